"""``a1 serve``: serve a policy over websockets (the openpi protocol), on 127.0.0.1 by default."""

from __future__ import annotations

import argparse
import logging
import os

from a1lib.eval.evaluate import load_policy
from a1lib.serve.server import ERROR_DETAILS, PolicyServer, ServerConfig, is_loopback
from a1lib.workflows.cli import Command

log = logging.getLogger("a1.serve")


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port (0: any free port)")
    parser.add_argument("--api-key", default=os.environ.get("A1_API_KEY"),
                        help="require 'Authorization: Api-Key <key>' (default: $A1_API_KEY, else none)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--checkpoint", metavar="DIR", help="serve the A1 policy saved in DIR")
    which.add_argument("--policy", choices=["shipped", "random"], default="shipped",
                       help="without --checkpoint: the committed cpu policy (policies/a1-cpu, default) "
                            "or a random baseline")
    parser.add_argument("--seed", type=int, default=0, help="random policy: its seed")
    parser.add_argument("--action-dim", type=int, default=5, help="random policy: action size A")
    parser.add_argument("--horizon", type=int, default=10, help="random policy: chunk length H")
    parser.add_argument("--max-message-mb", type=float, default=64.0, help="refuse larger requests")
    parser.add_argument("--max-image-side", type=int, default=1024, help="refuse larger images")
    parser.add_argument("--image-size", type=int, default=None,
                        help="enforce (N, N, 3) images and announce them (default: the policy's, else any)")
    parser.add_argument("--state-dim", type=int, default=None, help="enforce and announce the state size S")
    parser.add_argument("--error-detail", choices=ERROR_DETAILS, default=None,
                        help="what an error reply holds (default: traceback on 127.0.0.1, one line otherwise)")


def run_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    policy = load_policy(args.checkpoint or args.policy, seed=args.seed, imagine=False, action_dim=args.action_dim,
                         horizon=args.horizon)
    if not is_loopback(args.host) and not args.api_key:
        log.warning("binding %s without --api-key: anyone on the network can drive this policy", args.host)
    image_shape = None if args.image_size is None else (args.image_size, args.image_size, 3)
    config = ServerConfig(host=args.host, port=args.port, api_key=args.api_key,
                          max_message_mb=args.max_message_mb, max_image_side=args.max_image_side,
                          image_shape=image_shape, state_dim=args.state_dim, error_detail=args.error_detail)
    try:
        PolicyServer(policy, config).serve_forever()
    except KeyboardInterrupt:
        log.info("stopped")
    return 0


serve = Command(add_serve_arguments, run_serve)

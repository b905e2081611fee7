"""The understanding expert's vision path: conv trunk, grounding heat-maps, keypoints, augmentation,
and the vision pretraining stage."""

import numpy as np
import pytest
import torch

from a1lib.models.configuration_a1 import A1Config
from a1lib.models.modeling_a1 import A1Model
from a1lib.models.processor import grounding_targets
from a1lib.models.vision import ConvVision, PatchVision, grounding_loss, keypoints, random_shift, splat_targets

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_splat_then_soft_argmax_recovers_the_point_below_one_cell():
    pts = torch.tensor([[[[0.3125, 0.71], [0.0, 0.0]], [[0.52, 0.48], [0.0, 0.0]]]])  # (1, 2, 2, 2)
    valid = torch.tensor([[[True, False], [True, False]]])
    target = splat_targets(pts, valid, 16, 16)  # (1, 2, 16, 16), each a distribution
    assert torch.allclose(target.flatten(2).sum(-1), torch.ones(1, 2))
    kp, _ = keypoints(torch.log(target.clamp_min(1e-12)))
    assert torch.allclose(kp, pts[:, :, 0], atol=1e-4)


def test_several_objects_of_a_kind_share_the_mass():
    pts = torch.tensor([[[[0.25, 0.25], [0.75, 0.75]]]])
    target = splat_targets(pts, torch.tensor([[[True, True]]]), 8, 8)[0, 0]
    assert target.sum().item() == pytest.approx(1.0) and target[1:3, 1:3].sum().item() == pytest.approx(0.5)


def test_grounding_loss_prefers_the_right_place_and_knows_absence():
    pts = torch.tensor([[[[0.5, 0.5]], [[0.0, 0.0]]]])
    valid = torch.tensor([[[True], [False]]])
    right = torch.log(splat_targets(pts, valid, 8, 8).clamp_min(1e-6)) * 3
    wrong = torch.roll(right, shifts=3, dims=-1)
    assert grounding_loss(right, pts, valid) < grounding_loss(wrong, pts, valid)


def test_random_shift_moves_the_image_and_its_points_together():
    img = torch.zeros(1, 3, 16, 16)
    img[0, :, 5, 9] = 1.0  # a bright pixel at column 9, row 5
    pts = torch.tensor([[[[9.5 / 16, 5.5 / 16]]]])
    out, moved = random_shift(img, pts, 3, torch.Generator().manual_seed(1))
    r, c = (out[0, 0] == 1).nonzero()[0].tolist()
    assert moved[0, 0, 0].tolist() == pytest.approx([(c + 0.5) / 16, (r + 0.5) / 16])


def test_conv_vision_shapes_and_instruction_film():
    c = A1Config.preset("tiny", image_size=64)
    v = ConvVision(c)
    img = torch.rand(2, 3, 64, 64)
    tok, mask = torch.randint(0, c.vocab_size, (2, 5)), torch.ones(2, 5, dtype=torch.bool)
    tokens, logits = v(img, tok, mask)
    assert tokens.shape == (2, c.num_image_tokens, c.und_hidden) and logits.shape == (2, c.num_grounding, 16, 16)
    assert torch.allclose(v(img, tok, mask)[1], v(img)[1])  # FiLM starts as the identity
    torch.nn.init.normal_(v.film.weight)
    assert not torch.allclose(v(img, tok, mask)[1], v(img)[1])  # then the instruction changes the maps
    assert PatchVision(A1Config.preset("tiny", vision="patch"))(torch.rand(1, 3, 32, 32))[1] is None
    assert A1Config.preset("tiny", vision="patch").grounding == ()


def test_grounding_targets_from_the_scene():
    c = A1Config.preset("tiny")
    kind = np.full(8, -1)
    kind[:2] = [c.grounding.index("vase") - 3, c.grounding.index("flower") - 3]
    pose = np.zeros((8, 3), np.float32)
    pose[0, :2], pose[1, :2] = (0.4, 0.6), (1.2, 0.5)  # the flower is out of view
    scene = {"scene.kind": kind, "scene.pose": pose, "scene.camera": np.array([0.01, 0.0], np.float32),
             "scene.target": np.array([0]), "scene.goal": np.array([-1.0, -1.0], np.float32)}
    points, valid = grounding_targets(c.grounding, scene, np.array([0.5, 0.5, 1, 0, 1, 0], np.float32))
    g = {n: i for i, n in enumerate(c.grounding)}
    assert valid[g["gripper"], 0] and points[g["gripper"], 0].tolist() == pytest.approx([0.51, 0.5])
    assert valid[g["vase"]].sum() == 1 and valid[g["target"], 0] and not valid[g["goal"]].any()
    assert not valid[g["flower"]].any()


def test_pretrain_vision_then_load_and_freeze(tmp_path, quick_artifacts):
    from a1lib.train.vision import VisionTrainConfig, freeze_vision, load_vision, pretrain_vision

    c = A1Config.preset("tiny", image_size=64, vocab_size=512, max_text_len=16)
    arts = quick_artifacts
    cfg = VisionTrainConfig(steps=6, batch_size=4, num_workers=0, checkpoint_every=3,
                            source_weights={"sim": 1.0, "lab": 1.0})
    metrics = pretrain_vision(c, cfg, arts.datasets, arts.text_tokenizer, tmp_path / "vision", progress=False)
    assert metrics["steps"] == 6 and np.isfinite(metrics["final_loss"])
    model = A1Model(c)
    before = model.vision.stem[0][0].weight.clone()
    load_vision(model, tmp_path / "vision")
    assert not torch.equal(before, model.vision.stem[0][0].weight)
    freeze_vision(model)
    trainable = {n for n, p in model.vision.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("projector.") for n in trainable)
    with pytest.raises(ValueError, match="another model config"):
        load_vision(A1Model(A1Config.preset("tiny", image_size=64, vocab_size=512, grounding_dim=16)),
                    tmp_path / "vision")

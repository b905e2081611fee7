"""The emergency stop: one flag that every part of the control loop checks each step.

Triggers: ``trigger()`` from code, the red notebook button (``widget()``, when ipywidgets is
installed), and Ctrl-C / a kernel interrupt (``KeyboardInterrupt``, caught by the loop). Once set,
the loop sends the hold command, stops, and disconnects the robot; it stays set (latched) until
``reset()`` (``ControlLoop.rearm()`` also reconnects the robot).

A press never waits for the policy or the clock: the loop waits on this flag (``wait``), and it
sends every command inside ``sending()``, which a press waits for. So a command is either on its
way before the press, or never sent; the hold follows within one control period.

A notebook button only fires while the kernel is free to handle it, so the notebook runs the loop
in a background thread (``ControlLoop.start``) and the button stays live.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

SEND_WAIT_S = 1.0  # a press waits at most this long for a send in progress (a hung bus must not block it)


class EStop:
    def __init__(self) -> None:
        self._event = threading.Event()
        self._sending = threading.RLock()
        self.reason: str | None = None
        self.time: float | None = None

    @property
    def triggered(self) -> bool:
        return self._event.is_set()

    def trigger(self, reason: str = "e-stop") -> None:
        got = self._sending.acquire(timeout=SEND_WAIT_S)  # let a command being sent finish first
        try:
            if not self._event.is_set():
                self.reason, self.time = reason, time.time()
            self._event.set()
        finally:
            if got:
                self._sending.release()

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep up to ``timeout`` s, or until triggered; True if triggered."""
        return self._event.wait(timeout)

    @contextmanager
    def sending(self) -> Iterator[bool]:
        """``with estop.sending() as armed: if armed: send(...)``: True if not triggered, and a
        press waits until the block is done, so nothing sent in it can follow a press."""
        with self._sending:
            yield not self._event.is_set()

    def reset(self) -> None:
        self._event.clear()
        self.reason = self.time = None

    def widget(self):
        """A red ipywidgets button wired to ``trigger``; None when ipywidgets is missing."""
        try:  # lazy: only a notebook needs it, and it loads IPython; None where it is missing
            import ipywidgets
        except ImportError:
            return None
        button = ipywidgets.Button(description="E-STOP", button_style="danger", icon="stop",
                                   layout=ipywidgets.Layout(width="160px", height="48px"))
        button.on_click(lambda _b: self.trigger("button"))
        return button

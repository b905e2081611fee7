"""The emergency stop: one flag that every part of the control loop checks each step.

Triggers: ``trigger()`` from code, the red notebook button (``widget()``, when ipywidgets is
installed), and Ctrl-C / a kernel interrupt (``KeyboardInterrupt``, caught by the loop). Once set,
the loop sends the hold command, stops, and disconnects the robot; ``reset()`` re-arms it.

A notebook button only fires while the kernel is free to handle it, so the notebook runs the loop
in a background thread (``ControlLoop.start``) and the button stays live.
"""

from __future__ import annotations

import threading
import time


class EStop:
    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None
        self.time: float | None = None

    @property
    def triggered(self) -> bool:
        return self._event.is_set()

    def trigger(self, reason: str = "e-stop") -> None:
        if not self._event.is_set():
            self.reason, self.time = reason, time.time()
        self._event.set()

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

"""The imagined-futures explorer: what the generation expert thinks happens next, and what does.

InternVLA-A1's generation expert predicts the latent of frame t+delta before the action expert
plans; decoding that latent with the frozen image tokenizer shows the model's "imagination". The
explorer puts it next to the truth for any step of any episode:

    now (t)          the camera frame the policy sees (and frame t-delta as its history)
    imagined t+d     A1Policy(imagine=True): the decoded predicted future frame
    true t+d         frame t+delta of the same episode
    |error|          |imagined - true| per pixel (mean over RGB), in [0, 1]
    planned path     the action chunk integrated from the gripper position in the state:
                     x_{k+1} = clip(x_k + vx_k * MAX_SPEED) (a1lib.sim.world.planned_path), drawn
                     on frame t next to the path the expert actually took

and lets you ask "what if": another instruction, or another conveyor / turntable speed, in which
case the episode is re-simulated from the same seed with that speed (so the true future changes)
and the policy re-imagines and re-plans.

Episodes come from the scripted expert (``record_expert_episode``, evaluation seeds, never seen
in training) or from a LeRobot dataset. All logic is here; ``render_views`` draws one state as a
matplotlib figure, used both by the ipywidgets front end and by the static path (papermill, CI).

    explorer = Explorer(A1Policy.from_pretrained(checkpoint, imagine=True))
    explorer.widget()                                            # in Jupyter
    render_views(explorer.views(task="ExpressSorting", step=20, belt_speed=0.2))   # anywhere
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import ipywidgets as w
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

from a1lib.constants import IMAGE, IMAGE_PAST, STATE, TASK
from a1lib.data import LeRobotDataset
from a1lib.data.seeds import eval_seed
from a1lib.policy_protocol import inference_settings
from a1lib.sim import DYNAMIC_TASKS, STATIC_TASKS
from a1lib.sim.record import record_expert_episode
from a1lib.sim.tasks import SPEED_KEYS
from a1lib.sim.world import planned_path

VIEW_TITLES = ("now (t)", "imagined t+{d}", "true t+{d}", "|imagined - true|", "planned path")
BELT_RANGE = (0.0, 0.3)  # units/s; the sim draws 0.08-0.2 per episode
TURNTABLE_RANGE = (0.0, 1.5)  # rad/s; the sim draws 0.4-1.0


# ------------------------------------------------------------------ the planned path
def table_to_pixels(xy: np.ndarray, image_size: int) -> np.ndarray:
    """Table coordinates (..., 2) in [0, 1] -> imshow pixel coordinates (x = column, y = row)."""
    return np.asarray(xy, np.float64) * image_size - 0.5  # pixel i spans [i - 0.5, i + 0.5]


# ------------------------------------------------------------------ episodes
@dataclass
class Episode:
    """What the explorer needs of one episode (a subset of ``EpisodeRecord``)."""

    images: np.ndarray  # (T, H, W, 3) uint8
    states: np.ndarray  # (T, S) float32
    instruction: str
    label: str  # e.g. "ExpressSorting/lab seed 2147483648 belt 0.2"
    motion: np.ndarray | None = None  # (2,) belt units/s, turntable rad/s (None: unknown)

    def __len__(self) -> int:
        return int(self.images.shape[0])


def simulate_episode(task: str, domain: str, seed: int, image_size: int = 64, belt_speed: float | None = None,
                     turntable_speed: float | None = None) -> Episode:
    """One scripted-expert episode; the speeds (None: the seed's own draw) go to the env kwargs."""

    rec = record_expert_episode(task, domain, seed, image_size=image_size, belt_speed=belt_speed,
                                turntable_speed=turntable_speed)
    motion = np.asarray(rec.scene["scene.motion"][0], np.float32) if "scene.motion" in rec.scene else None
    label = f"{task}/{domain} seed {seed}"
    return Episode(rec.images, rec.states, rec.instruction, label, motion)


def dataset_episode(ds: Any, episode: int) -> Episode:
    """Episode ``episode`` of a LeRobotDataset (needs observation.image and observation.state)."""
    if STATE not in ds.features:
        raise ValueError(f"{ds.root}: no {STATE!r} feature (a human-video dataset?); the explorer needs the state")
    if not 0 <= episode < ds.num_episodes:
        raise ValueError(f"{ds.root}: episode {episode} out of range [0, {ds.num_episodes})")
    frames = np.arange(ds.episode_frames(episode).start, ds.episode_frames(episode).stop)
    images = np.asarray(ds.get_frames(IMAGE, frames))
    states = np.asarray(ds.columns[STATE][frames], np.float32)
    motion = np.asarray(ds.columns["scene.motion"][frames[0]], np.float32) if "scene.motion" in ds.features else None
    instruction = ds.task_of(int(frames[0]))
    return Episode(images, states, instruction, f"{Path(ds.root).name} episode {episode}", motion)


# ------------------------------------------------------------------ one explorer state -> views
@dataclass
class ExplorerState:
    """Everything the views depend on. ``None`` means "the episode's own"."""

    task: str = "ExpressSorting"
    domain: str = "lab"
    episode: int = 0  # index: evaluation seed eval_seed(task, episode), or the dataset's episode
    step: int = 0
    instruction: str | None = None  # what-if: another instruction
    belt_speed: float | None = None  # what-if: belt units/s
    turntable_speed: float | None = None  # what-if: rad/s


@dataclass
class Views:
    """The five views of one state, ready to draw (numpy only: no model, no figure)."""

    state: ExplorerState
    label: str
    instruction: str
    delta: int
    step: int  # t
    future_step: int  # min(t + delta, T - 1)
    episode_length: int
    current: np.ndarray  # (H, W, 3) uint8, frame t
    past: np.ndarray  # (H, W, 3) uint8, frame t - delta (clamped at 0)
    true_future: np.ndarray  # (H, W, 3) uint8, frame t + delta (clamped at the end)
    imagined: np.ndarray | None  # (H, W, 3) uint8; None when the model has no generation expert
    error: np.ndarray | None  # (H, W) float in [0, 1]
    actions: np.ndarray  # (Hc, A) real units
    path: np.ndarray  # (Hc + 1, 2) table units, the planned gripper path
    expert_path: np.ndarray  # (<= Hc + 1, 2) table units, the gripper positions that followed
    motion: np.ndarray | None = None  # (2,) belt units/s, turntable rad/s
    extras: dict = field(default_factory=dict)

    @property
    def mean_error(self) -> float | None:
        return None if self.error is None else float(self.error.mean())


def imagination_error(imagined: np.ndarray, true: np.ndarray) -> np.ndarray:
    """|imagined - true| per pixel, mean over RGB: (H, W) float in [0, 1]."""
    diff = np.abs(imagined.astype(np.float32) - true.astype(np.float32)) / 255.0  # (H, W, 3)
    return diff.mean(axis=-1)


def compute_views(policy: Any, episode: Episode, state: ExplorerState, delta: int) -> Views:
    """Run the policy on frame ``state.step`` of ``episode`` and collect the five views.

    The policy's noise stream is reset first, so the same state always gives the same views."""
    T = len(episode)
    t = int(np.clip(state.step, 0, T - 1))
    future = min(t + delta, T - 1)
    instruction = state.instruction if state.instruction else episode.instruction
    obs = {IMAGE: episode.images[t], IMAGE_PAST: episode.images[max(t - delta, 0)],
           STATE: episode.states[t], TASK: instruction}
    if hasattr(policy, "reset"):
        policy.reset()
    out = policy.infer(obs)
    actions = np.asarray(out["actions"], np.float32)  # (Hc, A)
    imagined = out.get("imagined")
    true_future = episode.images[future]
    error = imagination_error(imagined, true_future) if imagined is not None else None
    return Views(
        state=dataclasses.replace(state, step=t), label=episode.label, instruction=instruction, delta=delta, step=t,
        future_step=future, episode_length=T, current=episode.images[t], past=obs[IMAGE_PAST],
        true_future=true_future, imagined=imagined, error=error, actions=actions,
        path=planned_path(episode.states[t], actions), expert_path=episode.states[t: t + len(actions) + 1, :2],
        motion=episode.motion)


# ------------------------------------------------------------------ drawing (static and widget)
def render_views(views: Views, figsize: tuple[float, float] = (15.0, 3.6)):
    """One matplotlib Figure with the five views side by side; each axes' ``gid`` names its view
    (``current``, ``imagined``, ``true``, ``error``, ``path``)."""

    d = views.delta
    fig, axes = plt.subplots(1, 5, figsize=figsize, constrained_layout=True)
    ax_now, ax_img, ax_true, ax_err, ax_path = axes
    for ax, gid, title in zip(axes, ("current", "imagined", "true", "error", "path"), VIEW_TITLES):
        ax.set_gid(gid)
        ax.set_title(title.format(d=d), fontsize=10)
        ax.set_xticks([]), ax.set_yticks([])

    ax_now.imshow(views.current)
    ax_now.set_xlabel(f"t = {views.step} / {views.episode_length - 1}", fontsize=8)
    if views.imagined is not None:
        ax_img.imshow(views.imagined)
        ax_err.set_xlabel(f"mean {views.mean_error:.3f}", fontsize=8)
        im = ax_err.imshow(views.error, cmap="inferno", vmin=0.0, vmax=max(0.25, float(views.error.max())))
        fig.colorbar(im, ax=ax_err, fraction=0.046, pad=0.02)
    else:
        for ax in (ax_img, ax_err):
            ax.text(0.5, 0.5, "no imagined frame\n(policy without generation)", ha="center", va="center",
                    transform=ax.transAxes, fontsize=8)
    ax_true.imshow(views.true_future)
    end = " (episode end)" if views.future_step < views.step + d else ""
    ax_true.set_xlabel(f"t = {views.future_step}{end}", fontsize=8)

    size = views.current.shape[1]
    ax_path.imshow(views.current)
    expert = table_to_pixels(views.expert_path, size)
    plan = table_to_pixels(views.path, size)
    ax_path.plot(expert[:, 0], expert[:, 1], "--", color="white", lw=1.2, label="expert")
    ax_path.plot(plan[:, 0], plan[:, 1], "-o", color="#ff3b30", ms=2.5, lw=1.5, label="planned")
    ax_path.plot(plan[0, 0], plan[0, 1], "o", color="#34c759", ms=5, label="gripper")
    ax_path.set_xlim(-0.5, size - 0.5), ax_path.set_ylim(size - 0.5, -0.5)  # paths may leave the frame
    ax_path.legend(fontsize=6, loc="lower right", framealpha=0.6)
    ax_path.set_xlabel(f"{len(views.actions)}-step chunk", fontsize=8)

    speeds = ""
    if views.motion is not None:
        speeds = f"  |  belt {views.motion[0]:.2f} u/s, turntable {views.motion[1]:.2f} rad/s"
    fig.suptitle(f"{views.label}{speeds}\n\"{views.instruction}\"", fontsize=10)
    return fig


# ------------------------------------------------------------------ the explorer
class Explorer:
    """Episodes + a policy + the current ``ExplorerState``; ``views()`` / ``figure()`` / ``widget()``.

    ``policy``: an A1Policy (its ``imagine`` flag is switched on) or any Policy (no imagined view).
    ``dataset``: a LeRobotDataset or its path: episodes come from it instead of the simulator
    (then ``task`` is ignored and the speed what-if is unavailable: a recording cannot be re-run).
    """

    def __init__(self, policy: Any, tasks: Sequence[str] | None = None, domains: Sequence[str] = ("sim", "lab"),
                 episodes: int = 3, dataset: Any = None, image_size: int | None = None, delta: int | None = None,
                 state: ExplorerState | None = None):

        self.policy = policy
        if hasattr(policy, "imagine"):
            policy.imagine = True
        own = inference_settings(policy)  # the policy's delta; an explicit one overrides it (printed)
        self.delta = own.delta if delta is None else own.overridden("explorer", delta=int(delta)).delta
        config = getattr(policy, "config", None)
        self.image_size = int(image_size or getattr(config, "image_size", 64))
        self.tasks = list(tasks or [*STATIC_TASKS, *DYNAMIC_TASKS])
        self.domains = list(domains)
        self.dataset = None
        if dataset is not None:

            self.dataset = dataset if hasattr(dataset, "episode_frames") else LeRobotDataset(dataset)
        self.num_episodes = self.dataset.num_episodes if self.dataset is not None else int(episodes)
        self.state = state or ExplorerState(task=self.tasks[0], domain=self.domains[0])
        self._episodes: dict[tuple, Episode] = {}

    def episode(self, state: ExplorerState | None = None) -> Episode:
        """The (cached) episode of ``state``: re-simulated when a speed is overridden."""
        s = state or self.state
        if self.dataset is not None:
            key: tuple = ("dataset", s.episode)
        else:
            key = (s.task, s.domain, s.episode, s.belt_speed, s.turntable_speed)
        if key not in self._episodes:
            if self.dataset is not None:
                self._episodes[key] = dataset_episode(self.dataset, s.episode)
            else:

                ep = simulate_episode(s.task, s.domain, eval_seed(s.task, s.episode), self.image_size,
                                      s.belt_speed, s.turntable_speed)
                if s.belt_speed is not None or s.turntable_speed is not None:
                    ep.label += " (what if)"
                self._episodes[key] = ep
        return self._episodes[key]

    def update(self, **changes: Any) -> ExplorerState:
        """Change fields of the state (``task``, ``step``, ``belt_speed``, ...); unknown names fail."""
        names = {f.name for f in dataclasses.fields(ExplorerState)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"Explorer.update: unknown field(s) {unknown}; have {sorted(names)}")
        speeds = (changes.get("belt_speed"), changes.get("turntable_speed"))
        if self.dataset is not None and any(v is not None for v in speeds):
            raise ValueError("Explorer: the speed what-if needs simulated episodes (this explorer reads a dataset)")
        self.state = dataclasses.replace(self.state, **changes)
        return self.state

    def views(self, **changes: Any) -> Views:
        """Apply ``changes`` (see ``update``), then compute the views of the current state."""
        self.update(**changes)
        return compute_views(self.policy, self.episode(), self.state, self.delta)

    def figure(self, **changes: Any):
        return render_views(self.views(**changes))

    def widget(self):
        """An ipywidgets front end: task, domain, episode, step, instruction and speed what-ifs."""
        return ExplorerWidget(self).box


class ExplorerWidget:
    """Controls bound to an Explorer; every change re-imagines, re-plans and redraws."""

    def __init__(self, explorer: Explorer):

        self.explorer = explorer
        s = explorer.state
        simulated = explorer.dataset is None
        self.task = w.Dropdown(options=explorer.tasks, value=s.task, description="task", disabled=not simulated)
        self.domain = w.Dropdown(options=explorer.domains, value=s.domain, description="domain",
                                 disabled=not simulated)
        self.episode = w.IntSlider(value=s.episode, min=0, max=max(explorer.num_episodes - 1, 0), description="episode")
        self.step = w.IntSlider(value=s.step, min=0, max=len(explorer.episode()) - 1, description="step",
                                continuous_update=False)
        self.instruction = w.Text(value=s.instruction or "", placeholder=explorer.episode().instruction,
                                  description="instruction", layout=w.Layout(width="60%"), continuous_update=False)
        self.simulated = simulated
        self.what_if = w.Checkbox(value=s.belt_speed is not None or s.turntable_speed is not None,
                                  description="what if: speeds")
        belt, turntable = self._own_speeds()
        self.belt = w.FloatSlider(value=belt if s.belt_speed is None else s.belt_speed, min=BELT_RANGE[0],
                                  max=BELT_RANGE[1], step=0.01, description="belt u/s", continuous_update=False)
        self.turntable = w.FloatSlider(value=turntable if s.turntable_speed is None else s.turntable_speed,
                                       min=TURNTABLE_RANGE[0], max=TURNTABLE_RANGE[1], step=0.05,
                                       description="turntable", continuous_update=False)
        self._enable_speeds()
        self._syncing = False
        self._episode_key = (s.task, s.domain, s.episode)
        self.out = w.Output()
        controls = [self.task, self.domain, self.episode, self.step, self.instruction, self.what_if, self.belt,
                    self.turntable]
        for c in controls:
            c.observe(self._changed, names="value")
        self.box = w.VBox([w.HBox([self.task, self.domain, self.episode]), w.HBox([self.step, self.instruction]),
                           w.HBox([self.what_if, self.belt, self.turntable]), self.out])
        self.redraw()

    def _own_speeds(self) -> tuple[float, float]:
        """The episode's own belt and turntable speeds (what the sliders show while what-if is off)."""
        motion = self.explorer.episode().motion
        if motion is None:
            return 0.14, 0.7
        return float(motion[0]), float(motion[1])

    def _enable_speeds(self) -> None:
        """Only the speed the task has can be changed, and only while "what if" is ticked: the other
        sliders are visibly disabled (a slider that moves and changes nothing would mislead)."""
        key = SPEED_KEYS.get(self.task.value) if self.simulated else None
        self.what_if.disabled = key is None
        self.belt.disabled = not (self.what_if.value and key == "belt_speed")
        self.turntable.disabled = not (self.what_if.value and key == "turntable_speed")

    def _changed(self, _change: dict) -> None:
        if self._syncing:
            return
        key = (self.task.value, self.domain.value, self.episode.value)
        if key != self._episode_key:  # a new episode: the sliders start at its own speeds, as the header
            self._episode_key = key
            self.explorer.update(task=self.task.value, domain=self.domain.value, episode=self.episode.value,
                                 belt_speed=None, turntable_speed=None)
            self._syncing = True
            self.belt.value, self.turntable.value = self._own_speeds()
            self._syncing = False
        self._enable_speeds()
        what_if = SPEED_KEYS.get(self.task.value) if self.what_if.value else None  # the task's own speed only
        self.explorer.update(task=self.task.value, domain=self.domain.value, episode=self.episode.value,
                             instruction=self.instruction.value.strip() or None,
                             belt_speed=self.belt.value if what_if == "belt_speed" else None,
                             turntable_speed=self.turntable.value if what_if == "turntable_speed" else None)
        episode = self.explorer.episode()
        self.step.max = len(episode) - 1  # clamps the value, which may call back once more
        self.instruction.placeholder = episode.instruction
        self.explorer.update(step=min(self.step.value, len(episode) - 1))
        self.redraw()

    def redraw(self) -> None:

        with self.out:
            self.out.clear_output(wait=True)
            fig = render_views(self.explorer.views())
            display(fig)
            plt.close(fig)


__all__ = ["Episode", "Explorer", "ExplorerState", "ExplorerWidget", "Views", "compute_views", "dataset_episode",
           "imagination_error", "render_views", "simulate_episode", "table_to_pixels"]

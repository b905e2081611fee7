"""The imagined-futures explorer (a1lib.viz.explorer) with a trained ci A1Policy (quick_policy):
every view renders for a static and a dynamic task, the belt-speed what-if re-simulates the true
future, the planned path is drawn where the action chunk says, and the widget drives it."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from a1lib.models.policy_a1 import A1Policy  # noqa: E402
from a1lib.sim.world import MAX_SPEED, WORKSPACE, planned_path  # noqa: E402
from a1lib.viz.explorer import Explorer, ExplorerState, compute_views, render_views, simulate_episode, table_to_pixels  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see tests/conftest.py
VIEWS = ("current", "imagined", "true", "error", "path")


@pytest.fixture(scope="module")
def explorer(quick_policy):
    return Explorer(A1Policy.from_pretrained(quick_policy), tasks=["ZipBag", "ExpressSorting"], domains=["lab", "sim"])


def axes_by_view(fig):
    return {ax.get_gid(): ax for ax in fig.axes if ax.get_gid() in VIEWS}


@pytest.mark.parametrize("task", ["ZipBag", "ExpressSorting"])  # static, dynamic
def test_every_view_renders(explorer, task):
    views = explorer.views(task=task, domain="lab", episode=0, step=8)
    size = explorer.image_size
    assert views.imagined is not None and views.imagined.shape == (size, size, 3) and views.imagined.dtype == np.uint8
    assert views.error.shape == (size, size) and 0.0 <= views.error.min() and views.error.max() <= 1.0
    assert views.future_step == 8 + explorer.delta and views.actions.shape == (10, 5)
    np.testing.assert_array_equal(views.true_future, explorer.episode().images[8 + explorer.delta])
    fig = render_views(views)
    axes = axes_by_view(fig)
    assert sorted(axes) == sorted(VIEWS)
    for gid in ("current", "imagined", "true", "error"):
        images = axes[gid].get_images()
        assert len(images) == 1, gid
        assert np.asarray(images[0].get_array()).shape[:2] == (size, size)
    np.testing.assert_array_equal(np.asarray(axes["imagined"].get_images()[0].get_array()), views.imagined)
    np.testing.assert_allclose(np.asarray(axes["error"].get_images()[0].get_array()), views.error)
    labels = [line.get_label() for line in axes["path"].get_lines()]
    assert {"planned", "expert", "gripper"} <= set(labels)
    fig.canvas.draw()  # the whole figure really renders
    plt.close(fig)


def test_same_state_same_views(explorer):
    a = explorer.views(task="ExpressSorting", domain="lab", episode=0, step=5)
    b = explorer.views(step=5)
    np.testing.assert_array_equal(a.imagined, b.imagined)
    np.testing.assert_array_equal(a.actions, b.actions)


def test_belt_speed_what_if_changes_the_true_future(explorer):
    slow = explorer.views(task="ExpressSorting", domain="lab", episode=0, step=10, belt_speed=0.05)
    fast = explorer.views(belt_speed=0.25)
    assert slow.motion[0] == pytest.approx(0.05) and fast.motion[0] == pytest.approx(0.25)
    assert np.abs(slow.true_future.astype(int) - fast.true_future.astype(int)).mean() > 1.0
    # the same seed: only the speed differs, so the first frame is the same scene
    e_slow = explorer.episode(ExplorerState("ExpressSorting", "lab", belt_speed=0.05))
    e_fast = explorer.episode(ExplorerState("ExpressSorting", "lab", belt_speed=0.25))
    assert e_slow.instruction == e_fast.instruction
    own = explorer.views(belt_speed=None)  # back to the seed's own speed
    assert 0.08 <= own.motion[0] <= 0.2


class ChunkPolicy:
    """Returns a fixed action chunk (real units), whatever it sees."""

    def __init__(self, chunk):
        self.chunk = np.asarray(chunk, np.float32)

    def infer(self, obs):
        return {"actions": self.chunk}

    def reset(self):
        pass


def test_planned_path_is_drawn_where_the_chunk_says():
    episode = simulate_episode("ZipBag", "lab", seed=3)
    t = 4
    chunk = np.zeros((10, 5), np.float32)
    chunk[:, 0], chunk[:, 1] = 1.0, -0.5  # right at full speed, up at half speed
    chunk[6:, 1] = 3.0  # clipped to 1 like the sim does
    views = compute_views(ChunkPolicy(chunk), episode, ExplorerState(task="ZipBag", step=t), delta=5)
    x0, y0 = episode.states[t, :2]
    expected, x, y = [(x0, y0)], x0, y0
    for k in range(10):  # the sim's kinematics, written out
        x = min(max(x + MAX_SPEED * 1.0, WORKSPACE[0]), WORKSPACE[1])
        y = min(max(y + MAX_SPEED * (-0.5 if k < 6 else 1.0), WORKSPACE[0]), WORKSPACE[1])
        expected.append((x, y))
    np.testing.assert_allclose(views.path, expected, atol=1e-6)
    np.testing.assert_allclose(planned_path(episode.states[t], chunk), expected, atol=1e-6)
    fig = render_views(views)
    line = next(ln for ln in axes_by_view(fig)["path"].get_lines() if ln.get_label() == "planned")
    drawn = np.column_stack(line.get_data())
    np.testing.assert_allclose(drawn, table_to_pixels(np.array(expected), episode.images.shape[1]), atol=1e-6)
    assert drawn[-1, 0] - drawn[0, 0] == pytest.approx(min(x0 + 0.6, WORKSPACE[1]) * 64 - x0 * 64, abs=1e-4)
    assert views.imagined is None  # a policy without imagination: the panels say so instead
    plt.close(fig)


def test_widget_drives_the_explorer(explorer):
    pytest.importorskip("ipywidgets")
    from a1lib.viz.explorer import ExplorerWidget

    explorer.update(task="ExpressSorting", domain="lab", episode=0, step=3, belt_speed=None, instruction=None)
    ui = ExplorerWidget(explorer)
    own = explorer.episode().motion
    assert (ui.belt.value, ui.turntable.value) == pytest.approx((own[0], own[1]), abs=0.01)  # what the header says
    assert ui.belt.disabled and ui.turntable.disabled  # without "what if" the speeds can't be moved
    ui.belt.value = 0.22
    ui.what_if.value = True  # -> re-simulated with the belt at 0.22
    assert not ui.belt.disabled and ui.turntable.disabled  # ExpressSorting has a belt, no turntable
    assert explorer.state.belt_speed == pytest.approx(0.22)
    assert explorer.episode().motion[0] == pytest.approx(0.22)
    ui.task.value = "ZipBag"  # still ticked: a task without a speed gets none (never another task's)
    assert explorer.state.belt_speed is None and explorer.state.turntable_speed is None
    assert ui.belt.disabled and ui.turntable.disabled and ui.what_if.disabled
    ui.task.value = "ExpressSorting"  # back: the belt starts at this episode's own speed
    assert explorer.state.belt_speed == pytest.approx(own[0], abs=0.01)
    ui.instruction.value = "put the parcel in the red bin"
    assert explorer.state.instruction == "put the parcel in the red bin"
    ui.step.value = 7
    assert explorer.state.step == 7
    with pytest.raises(ValueError, match="unknown field"):
        explorer.update(speed=1.0)

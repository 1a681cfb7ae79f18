"""Office world of Toro Icarte et al. (2018), batched: 12x9 cells in 3x3 rooms, 8 propositions.

Coordinates follow the paper: (x, y) with x in [0, 12) to the right and y in [0, 9) upwards;
walls lie between cells, so a blocked move leaves the agent in place. Cell index
`(8 - y) * 12 + x` (row 0 at the top) keeps action 0 = up as in the other grids.

As a primitive-task world (what the proposition heads train on) an episode ends when the agent
steps onto a labelled cell, its goal; head p pays r_max there if the cell's proposition is p,
else r_min. Temporal tasks move freely over the same map (`envs.temporal`).
"""

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from composable_rl.languages.reward_machine import exclusive_labels
from composable_rl.world import BOUND_HEADS
from envs.gridworld import GRID_ACTIONS, NUM_ACTIONS, GoalEpisodes, hash_bits
from envs.render import AGENT_FILL, AGENT_OUTLINE, AGENT_RGB, CELL_PX, FLOOR_RGB, OUTLINE_RGB

WIDTH, HEIGHT = 12, 9
PROPOSITIONS = ("a", "b", "c", "d", "e", "f", "g", "n")
MEANING = {"e": "mail", "f": "coffee", "g": "office", "n": "plant"}
LABELLED: tuple[tuple[str, tuple[int, int]], ...] = (
    ("a", (1, 1)),
    ("b", (1, 7)),
    ("c", (10, 7)),
    ("d", (10, 1)),
    ("e", (7, 4)),
    ("f", (8, 2)),
    ("f", (3, 6)),
    ("g", (4, 4)),
    ("n", (4, 1)),
    ("n", (7, 1)),
    ("n", (4, 7)),
    ("n", (7, 7)),
    ("n", (1, 4)),
    ("n", (10, 4)),
)
START = (2, 1)
# label index l of a cell: 0 = no proposition, 1 + i = PROPOSITIONS[i] alone
ALPHABET = exclusive_labels(PROPOSITIONS)
STARTS = ("anywhere", "unlabelled", "standard")
_STEP = {0: (0, 1), 1: (1, 0), 2: (0, -1), 3: (-1, 0)}  # action -> (dx, dy): up right down left
_PROP_RGB = {
    "a": (240, 140, 20),
    "b": (240, 140, 20),
    "c": (240, 140, 20),
    "d": (240, 140, 20),
    "e": (40, 90, 220),
    "f": (140, 90, 40),
    "g": (140, 60, 180),
    "n": (40, 160, 70),
}
WALL_RGB = (64, 64, 64)


def cell_of(x: int, y: int) -> int:
    """Flat cell index of paper coordinates (x, y)."""
    return (HEIGHT - 1 - y) * WIDTH + x


def xy_of(cell: int) -> tuple[int, int]:
    """Paper coordinates (x, y) of a flat cell index."""
    row, x = divmod(int(cell), WIDTH)
    return x, HEIGHT - 1 - row


def _blocked(x: int, y: int, action: int) -> bool:
    """Whether a wall stops `action` at (x, y): room borders every 3 cells, minus the doors."""
    dx, dy = _STEP[action]
    nx, ny = x + dx, y + dy
    if not (0 <= nx < WIDTH and 0 <= ny < HEIGHT):
        return True
    if dx and nx // 3 != x // 3:  # crossing a vertical wall: doors in rows y = 1 and 7
        return y not in (1, 7)
    if dy and ny // 3 != y // 3:  # crossing a horizontal wall
        lower = min(y, ny)
        return not (x in (1, 4, 7, 10) and lower == 5 or x in (1, 10) and lower == 2)
    return False


def transition_table() -> Tensor:
    """next cell [108, 4] for every cell and action (up, right, down, left)."""
    table = torch.empty(WIDTH * HEIGHT, NUM_ACTIONS, dtype=torch.long)
    for cell in range(WIDTH * HEIGHT):
        x, y = xy_of(cell)
        for action, (dx, dy) in _STEP.items():
            stay = _blocked(x, y, action)
            table[cell, action] = cell if stay else cell_of(x + dx, y + dy)
    return table


class OfficeWorld(GoalEpisodes):
    """N Office worlds stepped by tensor ops; goals are the 14 labelled cells.

    Heads: one per proposition (r_max on reaching a cell of that proposition, r_min on any other
    labelled cell), plus MAX and MIN with `bound_heads`. `starts` picks episode start cells:
    anywhere (uniform over all cells, what training needs so that every goal cell is also a
    start), unlabelled (uniform over cells without a proposition) or standard ((2, 1)).
    Attributes mirror ObjectRooms (`objects` is the fixed goal layout) so that the trainer, the
    evaluation harness and the oracles serve both worlds.
    """

    action_spec = GRID_ACTIONS

    def __init__(
        self,
        *,
        num_envs: int = 64,
        max_steps: int = 100,
        r_max: float = 2.0,
        r_min: float = -0.1,
        step_reward: float = -0.1,
        observation: str = "indices",
        bound_heads: bool = False,
        starts: str = "anywhere",
        device: str | torch.device = "cpu",
    ) -> None:
        if num_envs < 1 or max_steps < 1:
            raise ValueError("num_envs and max_steps must be positive")
        if observation not in ("planes", "indices"):
            raise ValueError(f"observation must be 'planes' or 'indices', got {observation!r}")
        if starts not in STARTS:
            raise ValueError(f"starts must be one of {STARTS}, got {starts!r}")
        self.observation, self.starts = observation, starts
        self.num_envs, self.max_steps = num_envs, max_steps
        self.r_max, self.r_min, self.step_reward = r_max, r_min, step_reward
        self.device = torch.device(device)
        self.height, self.width = HEIGHT, WIDTH
        cells = HEIGHT * WIDTH
        self.walls = torch.zeros(HEIGHT, WIDTH, dtype=torch.bool, device=self.device)
        self.free_cells = torch.arange(cells, device=self.device)
        self.next_cell = transition_table().to(self.device)
        self.propositions = list(PROPOSITIONS)
        self.goal_names = [f"{p}{xy}".replace(" ", "") for p, xy in LABELLED]
        self.num_goals = len(LABELLED)
        goal_cells = [cell_of(*xy) for _, xy in LABELLED]
        self.goal_cells = torch.tensor(goal_cells, device=self.device)
        self.goal_label = torch.tensor(
            [PROPOSITIONS.index(p) for p, _ in LABELLED], device=self.device
        )
        self.cell_goal = torch.full((cells,), -1, dtype=torch.long, device=self.device)
        self.cell_goal[self.goal_cells] = torch.arange(self.num_goals, device=self.device)
        self.cell_label = torch.zeros(cells, dtype=torch.long, device=self.device)
        self.cell_label[self.goal_cells] = self.goal_label + 1
        self.alphabet = list(ALPHABET)
        bounds = list(BOUND_HEADS) if bound_heads else []
        self.head_names = self.propositions + bounds
        self.num_heads = len(self.head_names)
        member = [
            [p == h for h in self.propositions] + [h == "MAX" for h in bounds] for p, _ in LABELLED
        ]
        self.goal_membership = torch.tensor(member, dtype=torch.bool, device=self.device)
        self._goal_reward = torch.where(self.goal_membership, r_max, r_min).float()
        self._step_reward = torch.full((self.num_heads,), step_reward, device=self.device)
        unlabelled = torch.nonzero(self.cell_goal < 0).flatten()
        self._start_cells = {
            "anywhere": self.free_cells,
            "unlabelled": unlabelled,
            "standard": torch.tensor([cell_of(*START)], device=self.device),
        }[starts]
        if observation == "planes":
            self.obs_shape, self.obs_dtype = (1 + len(PROPOSITIONS), HEIGHT, WIDTH), torch.uint8
            planes = torch.zeros(len(PROPOSITIONS), cells, dtype=torch.uint8)
            planes[self.goal_label.cpu(), self.goal_cells.cpu()] = 1
            self._label_planes = planes.flatten().to(self.device)
        else:
            self.obs_shape, self.obs_dtype = (1,), torch.long
        self.num_features = cells
        self.goal_labels = self.labels(self.goal_cells)
        self.reset(0)

    def standable(self, objects: Tensor) -> Tensor:
        """Cells [L, S] the agent may occupy: all of them (labelled cells are starts too)."""
        return torch.ones(
            objects.shape[0], self.height * self.width, dtype=torch.bool, device=self.device
        )

    def sample_layout(self, seeds: Tensor, episodes: Tensor) -> tuple[Tensor, Tensor]:
        """Start cell [B] (per `starts`) and the fixed goal cells [B, 14] of these episodes."""
        choices = self._start_cells.numel()
        draw = (
            hash_bits(seeds, episodes, torch.zeros(1, dtype=torch.long, device=self.device))[:, 0]
            % choices
        )
        return self._start_cells[draw], self.goal_cells.repeat(seeds.shape[0], 1)

    def labels(self, cells: Tensor) -> Tensor:
        """Label index per cell (0 = none, 1 + i = proposition i), any shape."""
        return self.cell_label[cells]

    def goal_observations(self) -> Tensor:
        """Observation [G, ...] of the agent standing on each labelled cell."""
        return self.observe(self.goal_cells, self.goal_cells.expand(self.num_goals, -1))

    def observe(self, agent: Tensor, objects: Tensor) -> Tensor:
        """indices: long [B, 1] agent cell (the map is fixed); planes: uint8 [B, 9, 9, 12]
        agent plane then one plane per proposition."""
        if self.observation == "indices":
            return agent[:, None].clone()
        batch, cells = agent.shape[0], self.height * self.width
        planes = torch.zeros(
            batch, self.obs_shape[0] * cells, dtype=torch.uint8, device=self.device
        )
        planes[:, cells:] = self._label_planes
        planes.scatter_(1, agent[:, None], 1)
        return planes.view(batch, *self.obs_shape)

    def transition(
        self, agent: Tensor, objects: Tensor, actions: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Pure dynamics: (next agent [B], reward [B, K], terminated [B], goal [B] or -1).

        `objects` is accepted for the ObjectRooms signature; the goal cells are fixed.
        """
        next_agent = self.next_cell[agent, actions]
        goal = self.cell_goal[next_agent]
        terminated = goal >= 0
        reward = torch.where(
            terminated[:, None], self._goal_reward[goal.clamp(min=0)], self._step_reward
        )
        return next_agent, reward, terminated, goal

    def render_rgb(self, index: int = 0) -> np.ndarray:
        """uint8 RGB image [9*16, 12*16, 3]: rooms, walls, proposition cells and the agent."""
        return draw_office(int(self.agent[index]))


def draw_office(agent: int | None = None, path: Sequence[int] = ()) -> np.ndarray:
    """uint8 image of the map with walls as dark lines, coloured proposition cells with their
    letter's colour, an optional path (grey) and the agent marker."""
    image = np.full((HEIGHT * CELL_PX, WIDTH * CELL_PX, 3), FLOOR_RGB, dtype=np.uint8)

    def block(cell: int) -> np.ndarray:
        row, col = divmod(int(cell), WIDTH)
        return image[row * CELL_PX : (row + 1) * CELL_PX, col * CELL_PX : (col + 1) * CELL_PX]

    for cell in path:
        block(cell)[4:-4, 4:-4] = (170, 170, 170)
    for prop, xy in LABELLED:
        block(cell_of(*xy))[2:-2, 2:-2] = _PROP_RGB[prop]
    for cell in range(WIDTH * HEIGHT):
        x, y = xy_of(cell)
        tile = block(cell)
        if _blocked(x, y, 0):
            tile[:1] = WALL_RGB
        if _blocked(x, y, 2):
            tile[-1:] = WALL_RGB
        if _blocked(x, y, 3):
            tile[:, :1] = WALL_RGB
        if _blocked(x, y, 1):
            tile[:, -1:] = WALL_RGB
    if agent is not None:
        block(agent)[AGENT_OUTLINE] = OUTLINE_RGB
        block(agent)[AGENT_FILL] = AGENT_RGB
    return image

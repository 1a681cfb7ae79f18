"""Office propositions, labels and tasks, and an example machine, shared by the reward-machine,
YAML, LTL and Boolean-task tests."""

from pathlib import Path

from composable_rl.languages.reward_machine import exclusive_labels

OFFICE = tuple("abcdefgn")  # a-d rooms, e mail, f coffee, g office, n plant
OFFICE_LABELS = exclusive_labels(OFFICE)
TASKS_DIR = Path(__file__).resolve().parents[1] / "configs" / "tasks"
TASKS = {
    "coffee_office": "F(f & F g) & G !n",
    "mail_office": "F(e & F g) & G !n",
    "coffee_mail_office": "(F(f & F(e & F g)) | F(e & F(f & F g))) & G !n",
    "abcd": "F(a & F(b & F(c & F d))) & G !n",
}
EXAMPLE = {
    "states": ["u0", "u1", "done", "fail"],
    "initial": "u0",
    "accepting": ["done"],
    "edges": [
        {"from": "u0", "to": "u1", "when": "f & !n"},
        {"from": "u0", "to": "fail", "when": "n"},
        {"from": "u1", "to": "done", "when": "g & !n", "reward": 1},
        {"from": "u1", "to": "fail", "when": "n"},
    ],
}

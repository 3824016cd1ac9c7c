"""The playground's 1D signal, Graph and 3D sizes tabs: their handlers directly, and through gradio_client."""

from __future__ import annotations

import re

import gradio as gr
import pytest
from gradio_client import Client

from convzoo import beyond_grid as bg
from convzoo.demos import beyond, byhand

SIGNAL = (bg.SIGNAL, bg.SIGNAL_KERNEL, 0, 3, 3)
PATH = bg.GRAPHS["path"]
KERNEL = beyond.make_kernel("vertical line, then horizontal", 2, 3, 3)
VOLUME = (bg.format_volume(bg.VOLUME), KERNEL, 1, 1, 1, 0, 0, 0, 1, 1, 1)


def summed(page: str) -> str:
    return re.search(r"data-testid='beyond-sum'>([^<]*)<", page)[1]


def test_signal_state_writes_out_the_chosen_value():
    page, choices, chosen = beyond.signal_state(*SIGNAL, "output 2")
    assert choices == [f"output {i}" for i in range(1, 10)] + ["pooled 1", "pooled 2", "pooled 3"]
    assert summed(page) == "output 2 = (1 × -1/2) + (3 × 1) + (1 × -1/2) = 2"
    assert page.count("cz-win") == 3 and "× -1/2</small>" in page  # the three taps, their weights below
    page, _, chosen = beyond.signal_state(*SIGNAL, "pooled 3")
    assert summed(page) == "pooled 3 = max of outputs 7, 8, 9 = max(-1/2, 1/4, -3/2) = 1/4"
    _, _, chosen = beyond.signal_state("1, 2, 3", "1, 1", 0, 1, 1, "output 9")  # gone: the first one instead
    assert chosen == "output 1"
    page, _, _ = beyond.signal_state("1, 2, 3", "1, 1", 1, 2, 1, None)
    assert "grey: padding" in page and "max-pool 2, stride 1" in page


def test_a_click_chooses_and_a_stray_click_keeps_the_choice():
    pick = beyond._pick(beyond._view(beyond.signal_state))
    page, chooser, message = pick(byhand.CellClick(None, {"cell": "pooled 2"}), *SIGNAL, "output 1")
    assert chooser.value == "pooled 2" and "= 3/2" in summed(page) and message == ""
    page, chooser, message = pick(byhand.CellClick(None, {}), *SIGNAL, "output 4")
    assert chooser.value == "output 4" and summed(page).endswith("= -3/4") and message == ""


def test_graph_state_draws_the_graph_and_lights_what_fed_the_node():
    page, choices, chosen = beyond.graph_state(*PATH, "1", "node 2")
    assert choices == [f"node {v}" for v in range(1, 6)] and chosen == "node 2"
    assert summed(page) == "node 2: (3 + 1 + 1/2) / 3 = 3/2"
    assert page.count("<g data-cell=") == 5 and page.count("<line") == 4
    assert page.count("class='cz-sel'><circle") == 1 and page.count("class='cz-feed'><circle") == 2
    assert "fed by node 2 itself and its neighbours 1, 3" in page
    page, _, _ = beyond.graph_state("", "7", "1", "node 1")
    assert "node 1 alone" in page and summed(page) == "node 1: (7) / 1 = 7"
    assert beyond.load_graph("star") == bg.GRAPHS["star"]


def test_volume_state_shows_the_sizes_per_axis_and_a_sum_over_both_frames():
    page, choices, chosen = beyond.volume_state(*VOLUME, "frame 1, row 2, column 2")
    assert len(choices) == 4 and chosen == "frame 1, row 2, column 2"
    assert "2 × 4 × 4 input, 2 × 3 × 3 kernel → 1 × 2 × 2 output" in page
    for axis, formula in bg.size_formulas((2, 4, 4), (2, 3, 3)):
        assert f"<th>{axis}</th><td>{formula}</td>" in page
    assert summed(page).endswith("= 9/2") and summed(page).count("×") == 18 and page.count("cz-win") == 18
    padded = (*VOLUME[:5], 0, 1, 1, *VOLUME[8:])
    page, choices, _ = beyond.volume_state(*padded, None)
    assert len(choices) == 16 and "cz-pad" in page and "1 × 4 × 4 output" in page
    assert beyond.make_kernel("average", 1, 2, 2) == "1/4, 1/4\n1/4, 1/4"


@pytest.mark.parametrize("state, values, message", [
    (beyond.signal_state, ("1, x", "1", 0, 3, 3, None), "signal, value 2: 'x' is not a number"),
    (beyond.signal_state, ("1, 2", "1, 2, 3", 0, 3, 3, None), "the kernel has 3 values but the signal only 2"),
    (beyond.graph_state, ("1: 2\n2: 6", "1, 2, 3", "1", None), "names node 6, but there are only 3 nodes"),
    (beyond.volume_state, (VOLUME[0], KERNEL, 0, 1, 1, 0, 0, 0, 1, 1, 1, None), "stride along depth"),
    (beyond.volume_state, (VOLUME[0], "1, 2\n3", 1, 1, 1, 0, 0, 0, 1, 1, 1, None), "the kernel is ragged"),
])
def test_mistakes_are_a_sentence_beside_the_last_good_page(state, values, message):
    """The 2-D view's convention (issue 25: one widget): the sentence in the message box, the page and the chosen
    output left as they were (``gr.skip``), no exception."""
    page, chooser, said = beyond._view(state)(*values)
    assert said.startswith("**Cannot compute this:**") and message in said.replace("\\", "")
    assert page == gr.skip() and chooser == gr.skip()


def test_preset_mistakes_are_a_gradio_error_too():
    with pytest.raises(gr.Error, match="no kernel preset named"):
        beyond.make_kernel("blur", 2, 3, 3)
    with pytest.raises(gr.Error, match="kernel frames must be a whole number from 1 to 4"):
        beyond.make_kernel("average", 9, 3, 3)
    with pytest.raises(gr.Error, match="no graph named"):
        beyond.load_graph("cube")


def test_the_tabs_through_gradio_client(app_url):
    client = Client(app_url, verbose=False)
    page, chooser, message = client.predict(*SIGNAL, "pooled 1", api_name="/beyond_signal")
    assert chooser["value"] == "pooled 1" and "= max(-1/2, 2, -1/2) = 2" in page and message == ""
    adjacency, features = client.predict("molecule (methanol)", api_name="/beyond_graph_preset")
    page, _, _ = client.predict(adjacency, features, "1", "node 1", api_name="/beyond_graph")
    assert "node 1: (6 + 8 + 1 + 1 + 1) / 5 = 17/5" in page
    kernel = client.predict("frame difference (motion)", 2, 3, 3, api_name="/beyond_volume_kernel")
    page, _, message = client.predict(VOLUME[0], kernel, *VOLUME[2:], None, api_name="/beyond_volume")
    assert "= -1</div>" in page and message == ""  # frame 2 minus frame 1 over the first window: 4 - 5
    page, chooser, message = client.predict(VOLUME[0], "1, 2\n3", *VOLUME[2:], None, api_name="/beyond_volume")
    assert "the kernel is ragged" in message  # a mistake is a sentence in the message box, through the API too

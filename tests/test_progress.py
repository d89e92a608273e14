"""The progress bar: short logs when not on a terminal, silent when quiet."""

import io

from minisnn.apps.progress import Bar


def test_plain_stream_gets_a_line_per_quarter_and_the_final_figures():
    s = io.StringIO()
    with Bar(8, "train", stream=s) as bar:
        for _ in range(8):
            bar.update(1, loss=0.25)
        bar.update(0, val=0.9)
    lines = s.getvalue().splitlines()
    assert len(lines) == 5
    assert lines[0].startswith("train  [######") and "2/8" in lines[0]
    assert "8/8" in lines[-1] and "val 0.9" in lines[-1] and "loss 0.25" in lines[-1]


def test_quiet_bar_prints_nothing():
    s = io.StringIO()
    with Bar(3, "x", stream=s, quiet=True) as bar:
        bar.update(3)
    assert s.getvalue() == ""


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_terminal_bar_redraws_one_line():
    s = _Tty()
    with Bar(2, "x", stream=s) as bar:
        bar.update(1)
        bar.update(1)
    out = s.getvalue()
    assert out.count("\r") == 2 and out.endswith("\n") and out.count("\n") == 1

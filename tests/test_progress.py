from qua2.progress import LOG_INTERVAL, progress_bar


def test_bars_redraw_rarely_off_a_terminal(capsys):
    """Under pytest stderr is captured (not a terminal): one bar, few redraws."""
    with progress_bar(range(1000), desc="x") as bar:
        assert bar.mininterval == LOG_INTERVAL
        for _ in bar:
            pass
    assert capsys.readouterr().err.count("\r") <= 3
    assert progress_bar(range(3)).mininterval == LOG_INTERVAL

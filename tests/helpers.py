"""Helpers shared by the CLI tests."""


def error_line(capsys, command: str = "train") -> str:
    """The one stderr line of a failed command (and no traceback)."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert lines[0].startswith(f"ganforge {command}: error: "), err
    return lines[0]

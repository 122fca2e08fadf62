"""Hypothesis profiles: thorough under CI (the environment variable CI is set), quick otherwise.

HYPOTHESIS_PROFILE=ci|dev overrides the choice.
"""
import os

import pytest

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=100, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=15, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


@pytest.fixture
def refused(tmp_path, capsys, monkeypatch):
    """refused(argv): ``main(argv)`` in this process, run from tmp_path as a shell would; its status
    must be 2 and its stderr one line, "error: ...", no traceback. Returns that line."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MINIREPTILE_CACHE", str(tmp_path / "cache"))

    def refuse(argv):
        from minireptile.cli import main
        assert main([str(a) for a in argv]) == 2
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
        return lines[0]
    return refuse

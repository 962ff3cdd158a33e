"""Ctrl-C (SIGINT) interrupts a long read, write, reduction or copy: the
process gets KeyboardInterrupt inside the call, not after it.

Each case runs in a subprocess on an array of 1 TiB logical size that is
never written (a sparse .npy file, a Zarr directory without chunks: no
disk used), so the call would run for minutes; the test sends SIGINT once
the call has started and wants KeyboardInterrupt raised at the call's
line. The only time bound is the generous timeout of the subprocess."""

import signal
import subprocess
import sys
import textwrap
import time

import pytest

SHAPE = "(1 << 18, 1024, 1024)"  # float32: 1 TiB

CASES = {
    "sum": ("v.zarr", "r = a.sum()"),
    "mean along an axis": ("v.zarr", "r = a.mean(axis=1)"),
    "strided read": ("v.npy", "r = a[:, ::64, ::64]"),
    "fill": ("v.zarr", "a[...] = 0.0"),
    "save_as": ("v.zarr", "r = a.save_as(sys.argv[2])"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_sigint_interrupts_a_long_call(tmp_path, case):
    name, call = CASES[case]
    script = textwrap.dedent(
        f"""
        import sys
        import chunkyard
        a = chunkyard.create(sys.argv[1], {SHAPE}, "float32", chunks=(4, 1024, 1024))
        print("started", flush=True)
        {call}
        print("finished", flush=True)
        """
    )
    # A file, not -c: the traceback then shows the line it was raised at.
    (tmp_path / "run.py").write_text(script)
    p = subprocess.Popen(
        [sys.executable, str(tmp_path / "run.py"), str(tmp_path / name), str(tmp_path / "copy.zarr")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert p.stdout.readline().strip() == "started"
        time.sleep(0.5)  # into the call
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        pytest.fail(f"{case}: SIGINT did not stop the call")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert "finished" not in out
    assert p.returncode != 0
    lines = err.strip().splitlines()
    assert lines[-1] == "KeyboardInterrupt", err
    # Raised inside the call (its line is the last in the traceback), not
    # by Python code before or after it.
    # (Python may underline the expression in a line of its own.)
    shown = [l.strip() for l in lines[-4:-1]]
    assert call in shown and "line 6" in lines[-4 + shown.index(call) - 1], err

"""Issue 13's output hardening, end to end in real processes: special files given to -o, refusals that protect
the input and the model, permission bits, the exit codes of the pipe itself (141, /dev/full → 9, closed
stdin/stdout), SIGTERM and stale temporary files, and click's usage errors as one `error:` line."""

from __future__ import annotations

import hashlib
import io
import os
import shlex
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from bertcli import files
from bertcli.errors import OutputError

REPO_ROOT = Path(__file__).resolve().parents[1]


def _one_error_line(stderr: str, *fragments: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and "Traceback" not in stderr, stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def _bertcli(*args) -> str:
    return " ".join(shlex.quote(str(a)) for a in [sys.executable, "-m", "bertcli", *args])


def _parts(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


# ---------------------------------------------------------------------------------------------------------
# item 1: special files are written straight, never replaced


def test_dev_null_stays_a_character_device(run_cli, minilm_dir):
    r = run_cli("embed", "-m", minilm_dir, "hi", "-o", "/dev/null", "-f", "jsonl")
    assert r.returncode == 0, r.stderr
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert os.stat("/dev/null").st_rdev == os.makedev(1, 3)


def test_dev_stdout_gives_the_data_on_stdout_and_the_link_survives(run_cli, minilm_dir, tmp_path):
    link_before = os.readlink("/dev/stdout")
    r = run_cli("embed", "-m", minilm_dir, "hi", "there", "-o", "/dev/stdout", "-f", "npy")
    assert r.returncode == 0, r.stderr
    assert np.load(io.BytesIO(r.stdout_bytes)).shape == (2, 384)
    assert os.path.islink("/dev/stdout") and os.readlink("/dev/stdout") == link_before
    # `-o -` is stdout too, and a symlink to /dev/stdout is followed, not replaced
    (tmp_path / "to-stdout").symlink_to("/dev/stdout")
    r = run_cli("embed", "-m", minilm_dir, "hi", "-o", "to-stdout", "-f", "jsonl")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("\n") == 1 and '"line": 1' in r.stdout
    assert os.readlink(tmp_path / "to-stdout") == "/dev/stdout"
    r = run_cli("embed", "-m", minilm_dir, "hi", "-o", "-", "-f", "jsonl")
    assert r.returncode == 0 and r.stdout.count("\n") == 1, r.stderr
    assert _parts(tmp_path) == [] and not (tmp_path / "-").exists()


def test_fifo_reader_gets_the_data_and_the_fifo_stays(run_cli, minilm_dir, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    r = run_cli("embed", "-m", minilm_dir, "hi", "there", "-o", fifo, "-f", "npy")
    reader.join(30)
    assert r.returncode == 0, r.stderr
    assert np.load(io.BytesIO(got[0])).shape == (2, 384)  # a whole .npy: its header was patched in a spool
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert _parts(tmp_path) == []


def test_folder_target_exits_9_before_any_work(run_cli, minilm_dir, tmp_path):
    (tmp_path / "d").mkdir()
    r = run_cli("embed", "-m", minilm_dir, "hi", "-o", "d")
    assert r.returncode == 9
    _one_error_line(r.stderr, "cannot write d: it is a folder")
    assert list((tmp_path / "d").iterdir()) == []
    with pytest.raises(OutputError, match="it is a folder"):
        with files.atomic_write(tmp_path / "d"):
            pass
    assert (tmp_path / "d").is_dir()


def test_output_equal_to_input_is_refused(run_cli, minilm_dir, tmp_path):
    data = "first line\nsecond line\n"
    (tmp_path / "in.txt").write_text(data)
    (tmp_path / "alias.txt").symlink_to(tmp_path / "in.txt")
    for target in ("in.txt", "alias.txt", "./in.txt"):
        r = run_cli("embed", "-m", minilm_dir, "--file", "in.txt", "-o", target, "-f", "jsonl")
        assert r.returncode == 2, r.stderr
        _one_error_line(r.stderr, f"-o {Path(target)} is the input file in.txt")
        assert (tmp_path / "in.txt").read_text() == data
    assert _parts(tmp_path) == []


def test_output_into_the_model_is_refused(run_cli, minilm_dir, tmp_path):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(minilm_dir, model)
    before = _digest(model)
    for target in (model / "model.safetensors", model / "new.npy", model / "1_Pooling" / "x.jsonl"):
        r = run_cli("embed", "-m", model, "hi", "-o", target)
        assert r.returncode == 2, r.stderr
        _one_error_line(r.stderr, "bertcli never writes into a model")
    # a link from elsewhere to a model file is the model file too
    (tmp_path / "weights").symlink_to(model / "model.safetensors")
    r = run_cli("embed", "-m", model, "hi", "-o", "weights", "-f", "npy")
    assert r.returncode == 2
    _one_error_line(r.stderr, "bertcli never writes into a model")
    assert _digest(model) == before and _parts(model) == []
    assert not (model / "new.npy").exists()


def test_refusals_for_a_hub_model_and_a_folder_output(tmp_path):
    from bertcli.errors import UsageError
    from bertcli.resolve import ResolvedModel

    repo = tmp_path / "hub" / "models--org--name"
    (repo / "blobs").mkdir(parents=True)
    (repo / "blobs" / "abc123").write_bytes(b"weights")
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").symlink_to("../../blobs/abc123")
    model = ResolvedModel(ref="org/name", source="hub", path=snapshot, repo_id="org/name")
    (tmp_path / "elsewhere").symlink_to(repo / "blobs" / "abc123")
    for out in (snapshot / "model.safetensors", repo / "blobs" / "abc123", repo / "refs" / "main",
                snapshot / "new.npy", tmp_path / "elsewhere"):
        with pytest.raises(UsageError, match="bertcli never writes into a model"):
            files.refuse_overwrite(out, model=model)
    files.refuse_overwrite(tmp_path / "vectors.npy", model=model)  # anywhere else is fine
    files.refuse_overwrite("-", inputs=["-"], model=model)
    # --engine ray: the output folder may not be the input folder
    (tmp_path / "corpus").mkdir()
    with pytest.raises(UsageError, match="is the input folder"):
        files.refuse_overwrite(tmp_path / "corpus", inputs=[tmp_path / "corpus"])
    assert (repo / "blobs" / "abc123").read_bytes() == b"weights"


def test_existing_file_keeps_its_mode(run_cli, minilm_dir, tmp_path):
    target = tmp_path / "x.npy"
    target.write_bytes(b"old")
    target.chmod(0o640)
    r = run_cli("embed", "-m", minilm_dir, "hi", "-o", target)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert np.load(target).shape == (1, 384)
    # a link to a regular file: the file is rewritten, the link stays a link
    (tmp_path / "link.npy").symlink_to(target)
    r = run_cli("embed", "-m", minilm_dir, "a", "b", "-o", "link.npy")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "link.npy").is_symlink() and np.load(target).shape == (2, 384)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_atomic_write_mode_and_owner_in_process(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    target.chmod(0o604)
    with files.atomic_write(target, "w") as fh:
        fh.write("new")
    assert target.read_text() == "new" and stat.S_IMODE(target.stat().st_mode) == 0o604
    with files.atomic_write("/dev/null", "w") as fh:
        fh.write("gone")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_what_counts_as_a_stream_and_what_is_refused(tmp_path):
    import socket

    assert [files.standard_stream(p) for p in ("-", "/dev/stdout", "/dev/stderr", "/dev/fd/7", "/proc/self/fd/3")] \
        == [1, 1, 2, 7, 3]
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to("/dev/stderr")
    assert files.standard_stream(tmp_path / "a") == 2
    assert files.standard_stream(tmp_path / "plain.txt") is None and files.standard_stream("/dev/null") is None
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "sock"))
        with pytest.raises(OutputError, match="not a regular file, a character device or a FIFO"):
            with files.atomic_write(tmp_path / "sock"):
                pass
    assert stat.S_ISSOCK(os.lstat(tmp_path / "sock").st_mode)
    with pytest.raises(OutputError, match="file descriptor 97 is not open"):
        with files.atomic_write("/dev/fd/97"):
            pass


# ---------------------------------------------------------------------------------------------------------
# item 6: the pipe itself


def test_reader_gone_exits_141(minilm_dir):
    script = (f"set -o pipefail; seq 1 20000 | {_bertcli('tokenize', '-m', minilm_dir)} | head -n1 >/dev/null; "
              "echo ${PIPESTATUS[1]}")
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=_env(), timeout=120)
    assert done.stdout.strip() == "141", done.stderr
    assert "Traceback" not in done.stderr and "error" not in done.stderr


def test_full_disk_on_stdout_exits_9(minilm_dir):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    for args in (["tokenize", "-m", minilm_dir, "hello"], ["embed", "-m", minilm_dir, "hi", "-f", "npy"]):
        done = subprocess.run(["bash", "-c", f"{_bertcli(*args)} > /dev/full"], capture_output=True, text=True,
                              env=_env(), timeout=120)
        assert done.returncode == 9, done.stderr
        _one_error_line(done.stderr, "cannot write to stdout: No space left on device")


def test_closed_stdout_and_stdin(minilm_dir, tmp_path):
    done = subprocess.run(["bash", "-c", f"{_bertcli('tokenize', '-m', minilm_dir, 'hello')} >&-"],
                          capture_output=True, text=True, env=_env(), timeout=120, cwd=tmp_path)
    assert done.returncode == 9, done.stderr
    _one_error_line(done.stderr, "cannot write to stdout: it is closed")
    done = subprocess.run(["bash", "-c", f"{_bertcli('tokenize', '-m', minilm_dir)} <&-"],
                          capture_output=True, text=True, env=_env(), timeout=120, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    _one_error_line(done.stderr, "stdin is closed")
    # with stdout closed, an output file must not take descriptor 1 (stdout's bytes would land in it)
    done = subprocess.run(["bash", "-c", f"{_bertcli('embed', '-m', minilm_dir, 'hi', '-o', 'x.npy')} >&-"],
                          capture_output=True, text=True, env=_env(), timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert np.load(tmp_path / "x.npy").shape == (1, 384)


# ---------------------------------------------------------------------------------------------------------
# item 8: SIGTERM and stale temporary files


def _start_slow_embed(minilm_dir: Path, cwd: Path, target: str) -> tuple[subprocess.Popen, threading.Thread]:
    proc = subprocess.Popen([sys.executable, "-m", "bertcli", "embed", "-m", str(minilm_dir), "-f", "npy",
                             "-o", target, "--batch-size", "2"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), cwd=cwd)

    def feed() -> None:  # lines trickle in, so the run is mid-write when the signal comes
        try:
            for i in range(100_000):
                proc.stdin.write(f"line {i}\n".encode())
                proc.stdin.flush()
                time.sleep(0.002)
        except (BrokenPipeError, ValueError, OSError):
            pass

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    deadline = time.monotonic() + 90
    while not _parts(cwd):
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the temporary file never appeared"
        time.sleep(0.1)
    time.sleep(0.5)
    return proc, feeder


@pytest.mark.parametrize(("signum", "code", "message"), [
    (signal.SIGTERM, 143, "error: terminated (SIGTERM)"),
    (signal.SIGINT, 130, "error: interrupted"),
])
def test_signal_removes_the_temporary_file(minilm_dir, tmp_path, signum, code, message):
    (tmp_path / "x.npy").write_bytes(b"old")
    proc, _ = _start_slow_embed(minilm_dir, tmp_path, "x.npy")
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert _one_error_line(err.decode()) == message
    assert _parts(tmp_path) == [] and (tmp_path / "x.npy").read_bytes() == b"old"


def test_sigkill_leftover_is_removed_by_the_next_write(run_cli, minilm_dir, tmp_path):
    proc, _ = _start_slow_embed(minilm_dir, tmp_path, "x.npy")
    proc.kill()
    proc.communicate(timeout=60)
    left = _parts(tmp_path)
    assert len(left) == 1 and left[0].startswith(f".x.npy.{proc.pid}-")
    (tmp_path / ".other.npy.1-abcdefgh.part").write_bytes(b"not ours")  # another target's: kept
    r = run_cli("embed", "-m", minilm_dir, "hi", "-o", "x.npy")
    assert r.returncode == 0, r.stderr
    assert _parts(tmp_path) == [".other.npy.1-abcdefgh.part"]
    assert np.load(tmp_path / "x.npy").shape == (1, 384)


def test_stale_rule_never_takes_a_live_writers_file(tmp_path):
    import fcntl

    target = tmp_path / "out.bin"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = tmp_path / f".out.bin.{dead.pid}-aaaaaaaa.part"
        running = tmp_path / f".out.bin.{live.pid}-bbbbbbbb.part"  # its pid runs: kept even without a lock
        locked = tmp_path / f".out.bin.{dead.pid}-cccccccc.part"   # a lock is held: kept whatever the pid
        legacy_new = tmp_path / ".out.bin.dddddddd.part"           # no pid (older bertcli), fresh: kept
        legacy_old = tmp_path / ".out.bin.eeeeeeee.part"           # no pid, an hour old: removed
        for path in (stale, running, locked, legacy_new, legacy_old):
            path.write_bytes(b"x")
        old = time.time() - 3600
        os.utime(legacy_old, (old, old))
        holder = os.open(locked, os.O_RDONLY)
        fcntl.flock(holder, fcntl.LOCK_EX)
        try:
            with files.atomic_write(target) as fh:
                fh.write(b"new")
                mine = [p for p in _parts(tmp_path) if f".{os.getpid()}-" in p]
                assert len(mine) == 1  # this writer's own temporary file, named by its pid
        finally:
            os.close(holder)
        assert _parts(tmp_path) == sorted(p.name for p in (running, locked, legacy_new))
        assert target.read_bytes() == b"new"
    finally:
        live.kill()
        live.wait()


# ---------------------------------------------------------------------------------------------------------
# item 11 (third part): click's usage errors are one line, exit 2


@pytest.mark.parametrize(("args", "fragments"), [
    (["tokenize", "-m", "x", "--frobnicate"], ["No such option: --frobnicate", "see 'bertcli tokenize --help'"]),
    (["tokenize", "-m"], ["Option '-m' requires an argument", "see 'bertcli tokenize --help'"]),
    (["embed", "-m", "x", "--threads", "0", "hi"], ["Invalid value for '--threads': 0 is not in the range x>=1"]),
    (["qa", "-m", "x", "-q", "why", "--top-k", "-1"], ["Invalid value for '--top-k'"]),
    (["mask", "-m", "x", "--epochs", "many", "hi"], ["Invalid value for '--epochs' / '-e': 'many' is not a valid int"]),
    (["fill-mask", "-m", "x", "--top-k", "0", "a [MASK]"], ["Invalid value for '--top-k'", "fill-mask --help"]),
    (["frobnicate"], ["No such command 'frobnicate'", "commands: tokenize, embed"]),
    (["cache", "frob"], ["No such command 'frob'"]),
    (["--format"], ["Option '--format' requires an argument"]),
])
def test_click_usage_errors_are_one_line(run_cli, args, fragments):
    r = run_cli(*args)
    assert r.returncode == 2, r.stderr
    line = _one_error_line(r.stderr, *fragments)
    assert "╭" not in r.stderr and "Usage:" not in line
    assert r.stdout == ""


def test_help_version_and_the_bare_command_still_work(run_cli):
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("bertcli ")
    r = run_cli("tokenize", "--help")
    assert r.returncode == 0 and "--model" in r.stdout and r.stderr == ""
    r = run_cli()
    assert r.returncode == 2 and "tokenize" in r.stdout and "embed" in r.stdout

"Helpers shared by the tests that kill a CLI run and resume it."
import os, signal, subprocess, time


def sigkill_when(cmd, env, ready, what, timeout=300, poll=0.1, grace=0.0):
    "Start `cmd`, wait until `ready()` (failing if the process ends first or after `timeout` s), wait `grace` s, SIGKILL it."
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0 = time.time()
    while not ready():
        assert p.poll() is None, p.stderr.read().decode()[-2000:]
        assert time.time() - t0 < timeout, f"{what} not reached within {timeout} s"
        time.sleep(poll)
    time.sleep(grace)
    os.kill(p.pid, signal.SIGKILL); p.wait()

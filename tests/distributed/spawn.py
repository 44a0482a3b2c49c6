"""Run a function on 2 gloo processes (spawned, 10 s collective timeout) and collect what each rank returned."""

from __future__ import annotations

import datetime
import json
import socket
import traceback

import torch.distributed as dist
import torch.multiprocessing as mp


def _worker(rank: int, port: int, out_dir, target, args) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=10))
    try:
        result = {"value": target(rank, *args)}
    except Exception as error:  # reported to the test, which checks it
        result = {"error": f"{type(error).__name__}: {error}", "trace": traceback.format_exc()}
    (out_dir / f"rank{rank}.json").write_text(json.dumps(result))
    dist.destroy_process_group()


def run_two(tmp_path, target, *args, timeout: float = 60.0) -> list[dict]:
    """`target(rank, *args)` on ranks 0 and 1; a rank that hangs is killed and reported as {"hung": True}."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    context = mp.get_context("spawn")
    processes = [context.Process(target=_worker, args=(rank, port, tmp_path, target, args)) for rank in (0, 1)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(timeout=timeout)
    out = []
    for rank, p in enumerate(processes):
        if p.is_alive():
            p.kill()
            p.join()
            out.append({"hung": True})
            continue
        path = tmp_path / f"rank{rank}.json"
        out.append(json.loads(path.read_text()) if path.exists() else {"exitcode": p.exitcode})
    return out

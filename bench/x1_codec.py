"""The X1 codec (src/flowtap/x1/): µs per request decoded and per response encoded, the codec's
share of the "X1 requests/s on one HTTPS connection" figure issue 18 asks for.

Figures printed (best of --repeat runs, one CPU, no I/O):
  decode Ping              a one-message X1Request holding a PingRequest
  decode ActivateTask      one ActivateTask with 8 IP targets and one destination
  decode 100 x GetTaskDetails   one request of 100 messages, per message
  encode OK                one ActivateTaskResponse (oK)
  encode GetTaskDetails    one GetTaskDetailsResponse with the task above and its status

Usage: PYTHONPATH=src:. .venv/bin/python bench/x1_codec.py [--count N]   (about 3 s)
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime

from tests.x1.samples import TASK, XID, header

from flowtap.x1 import encode, model
from flowtap.x1.decode import decode_request


def _best_us(run: Callable[[], object], count: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter_ns()
        for _ in range(count):
            run()
        best = min(best, (time.perf_counter_ns() - start) / count / 1000)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    now = datetime.now(UTC)
    ping = encode.encode_request([model.Ping(header())])
    activate = encode.encode_request([model.ActivateTask(header(), TASK)])
    many = encode.encode_request([model.GetTaskDetails(header(i), XID) for i in range(100)])
    ok = [model.OkResponse(header().reply(now), "ActivateTask")]
    status = model.TaskStatus(model.ProvisioningStatus.COMPLETE, (), now, None, 123456)
    details = [model.GetTaskDetailsResponse(header().reply(now),
                                            model.TaskResponseDetails(TASK, status))]  # fmt: skip
    n, r = args.count, args.repeat
    rows = [
        ("decode Ping", _best_us(lambda: decode_request(ping), n, r)),
        ("decode ActivateTask", _best_us(lambda: decode_request(activate), n, r)),
        ("decode 100 x GetTaskDetails",
         _best_us(lambda: decode_request(many), max(1, n // 50), r) / 100),
        ("encode OK", _best_us(lambda: encode.encode_response(ok), n, r)),
        ("encode GetTaskDetails", _best_us(lambda: encode.encode_response(details), n, r)),
    ]
    for name, micros in rows:
        print(f"{name:30s} {micros:7.1f} µs" + (" per message" if "100 x" in name else ""))


if __name__ == "__main__":
    main()

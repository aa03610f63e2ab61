"""The cost of masking secrets in a task's log: SecretMask.feed on realistic output.

No database: the mask sits on the log path between a task's pipe and the store, so its
cost is per byte of output. A training-like stream (lines of ~80 characters, read in
chunks of 4 KiB as the agent's pipe reader gets them, one secret in every 1,000 lines)
is fed through a mask with 1, 4 and 16 secrets; the baseline, in the same run, is the
work the agent already does on each chunk of the same stream (the pipe reader's
incremental UTF-8 decode, ``clearq.runtime.process``). Printed: MB/s of each and the
mask's cost as a multiple of the decode's.

    python benchmarks/log_mask.py [--megabytes 32] [--repeat 3]
"""

from __future__ import annotations

import argparse
import codecs
import time

from clearq.runtime.logmask import SecretMask

CHUNK = 4096


def stream(megabytes: int, secret: str) -> list[str]:
    """``megabytes`` of log text cut in pipe-sized chunks, a secret now and then."""
    lines = []
    for i in range(megabytes * 1024 * 1024 // 80):
        text = f"epoch {i // 1000} step {i} loss {1 / (i + 1):.6f} lr 0.001 grad_norm 1.23"
        lines.append(f"token {secret} used\n" if i % 1000 == 999 else f"{text:<79}\n")
    text = "".join(lines)
    return [text[i : i + CHUNK] for i in range(0, len(text), CHUNK)]


def seconds(mask: SecretMask, chunks: list[str]) -> float:
    started = time.perf_counter()
    for chunk in chunks:
        mask.feed("stdout", chunk)
    mask.drain()
    return time.perf_counter() - started


def decode_seconds(chunks: list[bytes]) -> float:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    started = time.perf_counter()
    for chunk in chunks:
        decoder.decode(chunk)
    decoder.decode(b"", final=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    secret = "hf_Secr3tTokenValue0123456789"
    chunks = stream(args.megabytes, secret)
    raw = [c.encode() for c in chunks]
    size = sum(len(c) for c in raw) / 1e6
    print(f"{size:.0f} MB of log in {len(chunks)} chunks of {CHUNK} B; best of {args.repeat}")
    print(f"{'secrets':>8} {'decode MB/s':>12} {'mask MB/s':>10} {'mask/decode':>12}")
    for count in (1, 4, 16):
        secrets = [secret, *(f"other-secret-{n:04d}-value" for n in range(count - 1))]
        base = min(decode_seconds(raw) for _ in range(args.repeat))
        masked = min(seconds(SecretMask(secrets), chunks) for _ in range(args.repeat))
        print(f"{count:>8} {size / base:>12.0f} {size / masked:>10.0f} {masked / base:>12.1f}")


if __name__ == "__main__":
    main()

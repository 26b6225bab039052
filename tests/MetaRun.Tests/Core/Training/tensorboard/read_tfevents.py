#!/usr/bin/env python3
"""An independent reader of a run folder's TensorBoard event files, for the tests.

Usage: read_tfevents.py PROTO_MODULE_DIR RUN_DIR
Reads every events.out.tfevents.* file in RUN_DIR with TFRecord framing, checks both masked
CRC-32C of every record (its own table-driven CRC, not MetaRun's), parses each record as an Event
with definitions compiled from event.proto, applies SessionLog START (a resumed run's points at
or past the restart step are dropped, as TensorBoard does), and compares every scalar that has a
metrics.csv column with that column. Prints a JSON summary; exits 1 with the reason on any error.
"""
import csv, glob, json, os, struct, sys

sys.path.insert(0, sys.argv[1])
import event_pb2  # noqa: E402  (compiled by the test with protoc)

POLY = 0x82F63B78  # CRC-32C (Castagnoli), reflected
TABLE = []
for n in range(256):
    c = n
    for _ in range(8):
        c = (c >> 1) ^ POLY if c & 1 else c >> 1
    TABLE.append(c)


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked(data):
    c = crc32c(data)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def records(path):
    with open(path, "rb") as f:
        data = f.read()
    pos, n = 0, 0
    while pos < len(data):
        if len(data) - pos < 12:
            fail(f"{path}: record {n}: truncated header")
        header = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (hcrc,) = struct.unpack("<I", data[pos + 8:pos + 12])
        if hcrc != masked(header):
            fail(f"{path}: record {n}: length CRC mismatch")
        body = data[pos + 12:pos + 12 + length]
        if len(body) != length or len(data) < pos + 16 + length:
            fail(f"{path}: record {n}: truncated body")
        (dcrc,) = struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])
        if dcrc != masked(body):
            fail(f"{path}: record {n}: data CRC mismatch")
        yield body
        pos += 16 + length
        n += 1


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


run = sys.argv[2]
files = sorted(glob.glob(os.path.join(run, "events.out.tfevents.*")))
if not files:
    fail(f"{run}: no event files")
scalars, texts, versions, restarts, count = {}, {}, [], [], 0
# Files in the order they were written (name: events.out.tfevents.SECONDS.HOST.PID.KIND); TensorBoard reads them by name too.
for path in files:
    for body in records(path):
        count += 1
        e = event_pb2.Event()
        e.ParseFromString(body)
        kind = e.WhichOneof("what")
        if kind == "file_version":
            versions.append(e.file_version)
        elif kind == "session_log" and e.session_log.status == event_pb2.SessionLog.START:
            restarts.append(e.step)
            for tag in scalars:
                scalars[tag] = {s: v for s, v in scalars[tag].items() if s < e.step}
        elif kind == "summary":
            for v in e.summary.value:
                which = v.WhichOneof("value")
                if which == "simple_value":
                    scalars.setdefault(v.tag, {})[e.step] = v.simple_value
                elif which == "tensor":
                    if v.metadata.plugin_data.plugin_name != "text" or v.tensor.dtype != 7:
                        fail(f"{path}: tensor {v.tag} is not a text summary")
                    texts[v.tag] = v.tensor.string_val[0].decode("utf-8")
if not versions or any(v != "brain.Event:2" for v in versions):
    fail(f"file versions {versions}: every file must start with brain.Event:2")

columns = {"train_loss": "train/loss", "train_accuracy": "train/accuracy", "val_loss": "val/loss", "val_accuracy": "val/accuracy"}
compared = 0
with open(os.path.join(run, "metrics.csv")) as f:
    rows = list(csv.DictReader(f))
regression = "val/mse" in scalars or "train/accuracy" not in scalars
if regression:
    columns["val_ci95"] = "val/mse_ci95"
else:
    columns["val_ci95"] = "val/accuracy_ci95"
traced = [c for c in rows[0].keys() if c not in ("iteration", "seconds", *columns)] if rows else []
for c in traced:
    columns[c] = "traced/" + c
for row in rows:
    step = int(row["iteration"])
    for col, tag in columns.items():
        cell = row.get(col, "")
        if cell == "":
            if step in scalars.get(tag, {}):
                fail(f"step {step}: {tag} is {scalars[tag][step]} but metrics.csv has no {col}")
            continue
        if step not in scalars.get(tag, {}):
            fail(f"step {step}: metrics.csv has {col}={cell} but the event files have no {tag}")
        if scalars[tag][step] != f32(float(cell)):
            fail(f"step {step}: {tag} is {scalars[tag][step]}, metrics.csv {col} is {cell}")
        compared += 1
    if step not in scalars.get("time/seconds_per_iteration", {}):
        fail(f"step {step}: no time/seconds_per_iteration")
extra = {tag: sorted(set(steps) - {int(r["iteration"]) for r in rows}) for tag, steps in scalars.items() if not tag.startswith("eval/")}
extra = {k: v for k, v in extra.items() if v}
if extra:
    fail(f"event steps not in metrics.csv: {extra}")
print(json.dumps({
    "files": len(files), "records": count, "compared": compared, "restarts": restarts,
    "tags": sorted(scalars), "texts": sorted(texts), "settings": texts.get("settings", ""),
    "eval": {t: s for t, s in scalars.items() if t.startswith("eval/")},
    "seconds": scalars.get("time/seconds_per_iteration", {}),
}, default=str))

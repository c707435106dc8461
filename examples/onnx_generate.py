"""Generate text and answer questions with an exported model, ONNX Runtime alone.

No timelayers needed: numpy and onnxruntime read what ``timelayers export`` wrote,
the vocabulary and the recipe coming from the files' metadata.

    timelayers export runs/rnnlm rnnlm.onnx --format onnx
    python examples/onnx_generate.py rnnlm.onnx --start you --length 30

    timelayers export runs/attention attention-onnx --format onnx
    python examples/onnx_generate.py attention-onnx "JUN 17, 2013" "2/10/93"
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort


def session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def metadata(sess):
    meta = sess.get_modelmeta().custom_metadata_map
    return {k.removeprefix("timelayers."): json.loads(v) for k, v in meta.items()
            if k.startswith("timelayers.")}


def generate(path, start, length, temperature, seed):
    """Sample words after ``start`` from an exported Rnnlm / BetterRnnlm, carrying
    the recurrent state from one step to the next."""
    sess = session(path)
    words = metadata(sess)["vocab"]["words"]
    ids = {w: i for i, w in enumerate(words)}
    state = {i.name: np.zeros((1, i.shape[1]), np.float32) for i in sess.get_inputs()[1:]}
    names = [o.name for o in sess.get_outputs()]
    rng = np.random.default_rng(seed)
    word, out = ids[start], [start]
    for _ in range(length):
        result = dict(zip(names, sess.run(None, {"ids": np.array([[word]]), **state})))
        state = {k.removesuffix(".next"): v for k, v in result.items() if k != "logits"}
        logits = result["logits"][0, -1].astype(np.float64) / temperature
        p = np.exp(logits - logits.max())
        word = int(rng.choice(len(p), p=p / p.sum()))
        out.append(words[word])
    return " ".join(out)


def answer(folder, questions):
    """Greedy answers of an exported seq2seq model (encoder.onnx, decoder.onnx)."""
    encoder, decoder = session(Path(folder) / "encoder.onnx"), session(Path(folder) / "decoder.onnx")
    meta = metadata(encoder)
    words = meta["vocab"]["words"]
    ids = {w: i for i, w in enumerate(words)}
    recipe = meta.get("recipe") or {}
    width, length = recipe.get("shape") or (max(map(len, questions)), 10)
    rows = np.array([[ids[ch] for ch in q.ljust(width)] for q in questions])
    if recipe.get("options", {}).get("reverse"):
        rows = rows[:, ::-1].copy()
    enc = dict(zip([o.name for o in encoder.get_outputs()], encoder.run(None, {"questions": rows})))
    names = [o.name for o in decoder.get_outputs()]
    if "prefix" in [i.name for i in decoder.get_inputs()]:   # a Transformer: the prefix is the state
        prefix = np.full((len(questions), 1), ids["_"], dtype=np.int64)
        for _ in range(length):
            (logits,) = decoder.run(None, {"prefix": prefix, "memory": enc["memory"]})
            prefix = np.concatenate([prefix, logits.argmax(axis=1)[:, None]], axis=1)
        answers = prefix[:, 1:]
    else:
        feeds = {i.name: enc[i.name] for i in decoder.get_inputs() if i.name != "ids"}
        step = np.full(len(questions), ids["_"], dtype=np.int64)
        answers = []
        for _ in range(length):
            result = dict(zip(names, decoder.run(None, {"ids": step, **feeds})))
            feeds.update({k.removesuffix(".next"): v for k, v in result.items()
                          if k.endswith(".next")})
            step = result["logits"].argmax(axis=1)
            answers.append(step)
        answers = np.stack(answers, axis=1)
    return ["".join(words[i] for i in row).strip() for row in answers]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="an exported language model (.onnx) or seq2seq folder")
    parser.add_argument("questions", nargs="*", help="questions for a seq2seq model")
    parser.add_argument("--start", default="you")
    parser.add_argument("--length", type=int, default=30)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if Path(args.model).is_dir():
        for q, a in zip(args.questions, answer(args.model, args.questions)):
            print(f"{q:<30} -> {a}")
    else:
        print(generate(args.model, args.start, args.length, args.temperature, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())

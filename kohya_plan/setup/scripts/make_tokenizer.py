"""Build an exact replica of the openai/clip-vit-large-patch14 CLIP tokenizer, offline.

Run with the sd-scripts venv's python (needs `transformers`); used by `kohya-plan
selftest` and tests/sdlab.py.

    python make_tokenizer.py BPE_GZ TOKENIZER_CACHE_DIR

BPE_GZ is bpe_simple_vocab_16e6.txt.gz from the open_clip_torch wheel. The vocabulary is built
the way OpenAI CLIP's SimpleTokenizer does (the same 49408 ids Hugging Face ships). The tokenizer
is saved to TOKENIZER_CACHE_DIR/openai_clip-vit-large-patch14, the folder name that sd-scripts'
TokenizeStrategy._load_tokenizer looks for with --tokenizer_cache_dir.
"""

import gzip
import json
import os
import sys
import tempfile

from transformers import CLIPTokenizer

FOLDER = "openai_clip-vit-large-patch14"


def bytes_to_unicode():
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(2**8):
        if b not in bs:
            bs.append(b)
            cs.append(2**8 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


def main(bpe_gz, out_root):
    with gzip.open(bpe_gz) as f:
        lines = f.read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1 : 49152 - 256 - 2 + 1]]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab.extend("".join(m) for m in merges)
    vocab.extend(["<|startoftext|>", "<|endoftext|>"])
    encoder = {v: i for i, v in enumerate(vocab)}
    assert len(encoder) == 49408, len(encoder)

    with tempfile.TemporaryDirectory() as tmp:
        vocab_file = os.path.join(tmp, "vocab.json")
        merges_file = os.path.join(tmp, "merges.txt")
        with open(vocab_file, "w", encoding="utf-8") as f:
            json.dump(encoder, f, ensure_ascii=False)
        with open(merges_file, "w", encoding="utf-8") as f:
            f.write("#version: 0.2\n")
            for m in merges:
                f.write(" ".join(m) + "\n")
        tok = CLIPTokenizer(
            vocab_file,
            merges_file,
            unk_token="<|endoftext|>",
            bos_token="<|startoftext|>",
            eos_token="<|endoftext|>",
            pad_token="<|endoftext|>",
            model_max_length=77,
        )
        out = os.path.join(out_root, FOLDER)
        tok.save_pretrained(out)
    ids = tok("a photo of testchar, red hair")["input_ids"]
    print("saved", out, "vocab", len(tok), "example ids", ids)
    # ids of the real tokenizer for this text
    expected = [49406, 320, 1125, 539, 7738, 16017, 267, 736, 2225, 49407]
    assert ids == expected, ids


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

"""Build the google/t5-v1_1-xxl tokenizer (T5TokenizerFast) offline, for --tokenizer_cache_dir.

Run with the sd-scripts venv's python (needs `transformers`, `tokenizers`); used by
tests/sdlab_families.py.

    python tests/sdlab_make_t5_tokenizer.py SDIST_OR_HPP TOKENIZER_CACHE_DIR

Where the vocabulary comes from: the stable-diffusion-cpp-python sdist on PyPI (0.4.7, 20 MB)
vendors stable-diffusion.cpp, whose src/tokenizers/vocab/clip_t5.hpp embeds Hugging Face's
tokenizer.json of the T5 v1.1 Unigram tokenizer as the C byte array `t5_tokenizer_json_str[]`
(32000 sentencepiece pieces + 100 <extra_id_N> = 32100 ids). SDIST_OR_HPP is that sdist
(.tar.gz) or the extracted clip_t5.hpp.

Writes TOKENIZER_CACHE_DIR/google_t5-v1_1-xxl, the folder name sd-scripts'
TokenizeStrategy._load_tokenizer looks for (the model id with "/" replaced by "_").
"""

import json
import re
import sys
import tarfile
import tempfile
from pathlib import Path

from tokenizers import Tokenizer
from transformers import T5TokenizerFast

FOLDER = "google_t5-v1_1-xxl"
ARRAY = "t5_tokenizer_json_str"
HPP_SUFFIX = "src/tokenizers/vocab/clip_t5.hpp"


def read_hpp(src):
    """The text of clip_t5.hpp, from the sdist or from the file itself."""
    if src.endswith((".tar.gz", ".tgz")):
        with tarfile.open(src) as tf:
            member = next((m for m in tf if m.name.endswith(HPP_SUFFIX)), None)
            if member is None:
                sys.exit(f"{src} has no member ending in {HPP_SUFFIX}")
            fh = tf.extractfile(member)
            assert fh is not None
            return fh.read().decode("ascii")
    return Path(src).read_text(encoding="ascii")


def extract_json(hpp):
    """The bytes of the C array `t5_tokenizer_json_str[] = { 0x.., ... };`."""
    start = hpp.index(f"{ARRAY}[] = {{")
    start = hpp.index("{", start) + 1
    end = hpp.index("};", start)
    return bytes(int(h, 16) for h in re.findall(r"0x([0-9a-fA-F]{2})", hpp[start:end]))


def main(src, out_root):
    raw = extract_json(read_hpp(src))
    data = json.loads(raw)
    assert data["model"]["type"] == "Unigram", data["model"]["type"]
    out = Path(out_root) / FOLDER
    with tempfile.TemporaryDirectory() as tmp:
        tok_json = Path(tmp) / "tokenizer.json"
        tok_json.write_bytes(raw)
        Tokenizer.from_file(str(tok_json))  # the tokenizers library accepts it as it is
        tok = T5TokenizerFast(
            tokenizer_file=str(tok_json),
            eos_token="</s>",
            unk_token="<unk>",
            pad_token="<pad>",
            extra_ids=100,
            model_max_length=512,
        )
        tok.save_pretrained(str(out))

    loaded = T5TokenizerFast.from_pretrained(str(out))
    ids = loaded("Hello world")["input_ids"]
    special = (loaded.pad_token_id, loaded.eos_token_id, loaded.unk_token_id)
    print("saved", out, "vocab", len(loaded), "pad/eos/unk", special, "'Hello world' ->", ids)
    # the real google/t5-v1_1-xxl tokenizer: 32100 ids, pad 0, eos 1, unk 2
    assert len(loaded) == 32100, len(loaded)
    assert special == (0, 1, 2), special
    assert ids == [8774, 296, 1], ids


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

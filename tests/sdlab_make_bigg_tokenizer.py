"""Build SDXL's second tokenizer (laion/CLIP-ViT-bigG-14-laion2B-39B-b160k) offline.

Run with the sd-scripts venv's python (needs `transformers`); used by tests/sdlab_families.py.

    python tests/sdlab_make_bigg_tokenizer.py CLIP_L_TOKENIZER_DIR TOKENIZER_CACHE_DIR

The bigG tokenizer is the same CLIP BPE as openai/clip-vit-large-patch14 (49408 ids, the same
merges, bos and eos); only its pad token differs: "!" (id 0) instead of <|endoftext|>.
sd-scripts sets tokenizer2.pad_token_id = 0 itself after loading (library/strategy_sdxl.py),
so the padding is the same either way; the saved pad token matters to other readers.
Writes TOKENIZER_CACHE_DIR/laion_CLIP-ViT-bigG-14-laion2B-39B-b160k.
"""

import sys
from pathlib import Path

from transformers import CLIPTokenizer

FOLDER = "laion_CLIP-ViT-bigG-14-laion2B-39B-b160k"


def main(clip_l_dir, out_root):
    out = Path(out_root) / FOLDER
    CLIPTokenizer.from_pretrained(clip_l_dir, pad_token="!").save_pretrained(str(out))
    loaded = CLIPTokenizer.from_pretrained(str(out))
    ids = loaded("a photo of testchar, red hair", padding="max_length", max_length=16)["input_ids"]
    print("saved", out, "pad", repr(loaded.pad_token), loaded.pad_token_id, "ids", ids)
    # the real bigG tokenizer pads with "!" = id 0; the text ids are CLIP-L's
    assert loaded.pad_token_id == 0, loaded.pad_token_id
    assert ids[:10] == [49406, 320, 1125, 539, 7738, 16017, 267, 736, 2225, 49407], ids
    assert ids[10:] == [0] * 6, ids


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

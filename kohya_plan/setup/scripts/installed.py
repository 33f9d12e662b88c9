"""What a virtual environment holds, as JSON on stdout (run by `kohya-plan setup` inside it).

Metadata only, no heavy imports: it runs after every step and must be quick.

    python installed.py
"""

import json
import re
import sys
from importlib import metadata


def _name(dist: metadata.Distribution) -> str:
    return re.sub(r"[-_.]+", "-", dist.metadata["Name"] or "").lower()


def main() -> None:
    distributions = {}
    editable = {}
    for dist in metadata.distributions():
        name = _name(dist)
        if not name:
            continue
        distributions[name] = dist.version
        direct = dist.read_text("direct_url.json")
        if direct:
            try:
                data = json.loads(direct)
            except ValueError:
                continue
            if data.get("dir_info", {}).get("editable"):
                editable[name] = data.get("url", "")
    json.dump(
        {
            "python": ".".join(str(v) for v in sys.version_info[:3]),
            "executable": sys.executable,
            "prefix": sys.prefix,
            "base_prefix": sys.base_prefix,
            "distributions": distributions,
            "editable": editable,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()

"""What `kohya-plan doctor` needs to know about the trainer's interpreter, as one JSON line.

Run ONCE, in the interpreter that runs sd-scripts (never in kohya-plan's own):

    python probe.py [--sd-scripts DIR] [--packages a,b,c] [--imports x,y]

It never fails on a broken environment: every piece it cannot learn is reported as an error
text in the JSON, which kohya-plan evaluates (kohya_plan.setup.doctor.evaluate).
"""

import argparse
import contextlib
import json
import os
import platform
import sys
import traceback
from importlib import metadata

PROBE_VERSION = 1


def _error(exc: BaseException) -> str:
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return text.splitlines()[-1] if text else type(exc).__name__


def _versions(names):
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
        except Exception as exc:  # a broken dist-info folder
            found[name] = None
            found[name + ":error"] = _error(exc)
    return found


def _imports(names):
    results = {}
    for name in names:
        try:
            __import__(name)
        except BaseException as exc:
            results[name] = _error(exc)
        else:
            results[name] = None
    return results


def _torch():
    try:
        import torch
    except BaseException as exc:
        return {"error": _error(exc)}
    # A broken or foreign torch (no torch.version, no __version__) is a finding, not a crash
    # of the probe: the rest of the environment is still examined.
    version = getattr(torch, "__version__", None)
    if not isinstance(version, str):
        return {"error": "the torch package has no __version__: not a real PyTorch install"}
    builds = getattr(torch, "version", None)
    info = {
        "version": version,
        "cuda_build": getattr(builds, "cuda", None),
        "hip_build": getattr(builds, "hip", None),
        "cuda_available": False,
        "cuda_error": None,
        "devices": [],
        "mps_available": False,
    }
    try:
        info["cuda_available"] = bool(torch.cuda.is_available())
        if info["cuda_available"]:
            for index in range(torch.cuda.device_count()):
                props = torch.cuda.get_device_properties(index)
                info["devices"].append(
                    {
                        "index": index,
                        "name": props.name,
                        "memory_bytes": int(props.total_memory),
                        "capability": [props.major, props.minor],
                    }
                )
    except Exception as exc:
        info["cuda_error"] = _error(exc)
    with contextlib.suppress(Exception):
        info["mps_available"] = bool(torch.backends.mps.is_available())
    return info


def _default_config_file():
    """accelerate's own formula (commands/config/config_args.py), for when it cannot import."""
    cache = os.path.expanduser(
        os.environ.get(
            "HF_HOME", os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
        )
    )
    yaml_file = os.path.join(cache, "accelerate", "default_config.yaml")
    json_file = os.path.join(cache, "accelerate", "default_config.json")
    return yaml_file if os.path.isfile(yaml_file) or not os.path.isfile(json_file) else json_file


def _flat_yaml(text):
    """The top-level `key: value` lines of a YAML file, for when pyyaml is not installed.

    The same as kohya_plan.inputs.accelerate_config.flat_yaml: the probe runs alone in the
    trainer's interpreter, where kohya-plan cannot be imported.
    """
    values = {}
    for line in text.splitlines():
        if not line or line[0] in " #-" or ":" not in line:
            continue
        key, _, raw = line.partition(":")
        raw = raw.strip().strip("'\"")
        lowered = raw.lower()
        if lowered in ("true", "false"):
            values[key.strip()] = lowered == "true"
        elif raw.isdigit():
            values[key.strip()] = int(raw)
        elif raw:
            values[key.strip()] = None if lowered in ("null", "~") else raw
    return values


def _accelerate_config():
    """The config file `accelerate launch` would read by default, and what it sets."""
    try:
        from accelerate.commands.config.config_args import default_config_file
    except BaseException:  # accelerate missing or broken: the same formula, by hand
        default_config_file = _default_config_file()
    info = {"path": default_config_file, "exists": os.path.isfile(default_config_file)}
    if info["exists"]:
        try:
            with open(default_config_file, encoding="utf-8") as fh:
                if default_config_file.endswith(".json"):
                    info["values"] = json.load(fh)
                else:
                    try:
                        import yaml
                    except ImportError:  # accelerate (and so pyyaml) missing
                        info["values"] = _flat_yaml(fh.read())
                    else:
                        info["values"] = yaml.safe_load(fh) or {}
        except Exception as exc:
            info["error"] = _error(exc)
    return info


def _sd_scripts(folder):
    if not folder:
        return None
    sys.path.insert(0, folder)
    found = {"path": folder}
    try:
        import library

        found["library"] = os.path.dirname(os.path.abspath(library.__file__))
    except BaseException as exc:
        found["library_error"] = _error(exc)
    return found


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sd-scripts", default="")
    parser.add_argument("--packages", default="")
    parser.add_argument("--imports", default="")
    args = parser.parse_args()
    names = [n for n in args.packages.split(",") if n]
    result = {
        "probe_version": PROBE_VERSION,
        "python": {
            "executable": sys.executable,
            "version": ".".join(str(v) for v in sys.version_info[:3]),
            "prefix": sys.prefix,
            "base_prefix": sys.base_prefix,
            "system": platform.system(),
            "machine": platform.machine(),
        },
        "packages": _versions(names),
        "torch": _torch(),
        "imports": _imports([n for n in args.imports.split(",") if n]),
        "accelerate_config": _accelerate_config(),
        "sd_scripts": _sd_scripts(args.sd_scripts),
    }
    sys.stdout.write("KOHYA_PLAN_PROBE " + json.dumps(result) + "\n")


if __name__ == "__main__":
    main()

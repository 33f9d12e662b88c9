"""[launch]: where sd-scripts and its Python are, accelerate's launcher flags, extra options."""

from __future__ import annotations

from pydantic import Field, field_validator

from kohya_plan.plan.common import ExtraValue, OptionalPlanPath, PositiveInt, Section


class LaunchSection(Section):
    """How the trainer is started (accelerate launch) and any other sd-scripts option."""

    sd_scripts: OptionalPlanPath = Field(
        None,
        description=(
            "Folder holding train_network.py; default $KOHYA_SD_SCRIPTS, else this "
            "checkout's vendor/sd-scripts, else the one `kohya-plan setup` installed."
        ),
    )
    python: str | None = Field(
        None, description="Interpreter with sd-scripts' requirements (may be another venv)."
    )
    num_processes: PositiveInt = Field(1, description="Processes (GPUs) for accelerate.")
    num_machines: PositiveInt = 1
    num_cpu_threads_per_process: PositiveInt = 2
    gpu_ids: str | None = Field(None, description='e.g. "0,1".')
    main_process_port: int | None = Field(None, ge=1, le=65535)
    extra: dict[str, ExtraValue] = Field(
        default_factory=dict,
        description="Any other train_network.py option by its own name: { noise_offset = 0.05 }.",
    )

    @field_validator("gpu_ids")
    @classmethod
    def _gpu_ids(cls, value: str | None) -> str | None:
        if value is None or value == "all":
            return value
        parts = value.split(",")
        if not all(p.strip().isdigit() for p in parts):
            msg = f'{value!r} is not a list of GPU numbers — e.g. "0,1" or "all"'
            raise ValueError(msg)
        return ",".join(p.strip() for p in parts)

    @field_validator("extra")
    @classmethod
    def _known_options(cls, value: dict[str, ExtraValue]) -> dict[str, ExtraValue]:
        # Checked against sd-scripts' own parser: its config file accepts any key silently.
        import difflib

        from kohya_plan.options import OPTION_FOR, options_for, owned_options, value_problem

        options = options_for("train_network.py")
        owned = owned_options()
        problems = []
        for key, item in value.items():
            if key not in options:
                close = difflib.get_close_matches(key, options, n=1, cutoff=0.7)
                hint = f'did you mean "{close[0]}"?' if close else "see sd-scripts' --help"
                problems.append(f"{key!r} is not a train_network.py option — {hint}")
            elif key in owned:
                plan_key = next((k for k, v in OPTION_FOR.items() if v == key), None)
                where = f"set {plan_key} instead" if plan_key else "kohya-plan sets it itself"
                problems.append(f"{key!r} is set by the plan — {where}")
            elif (problem := value_problem(options[key], item)) is not None:
                problems.append(problem)
        if problems:
            raise ValueError("; ".join(problems))
        return value

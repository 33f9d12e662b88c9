"""What `check` found: the plan, the facts, every finding, and the `check --json` document."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from kohya_plan.errors import PlanError
from kohya_plan.findings import Finding, blocking
from kohya_plan.lora import lora_file_bytes, lora_is_exact, lora_parameters
from kohya_plan.options import sd_scripts_commit

if TYPE_CHECKING:
    from pathlib import Path

    from kohya_plan.inputs.facts import Facts
    from kohya_plan.plan import Plan


@dataclass(frozen=True)
class CheckReport:
    """A validated plan, what was found on disk, and every finding."""

    plan_path: Path
    plan: Plan
    facts: Facts
    findings: list[Finding]

    @property
    def ok(self) -> bool:
        """No errors that are not waived."""
        return not blocking(self.findings)

    @property
    def lora_parameters(self) -> int:
        return lora_parameters(self.plan, self.facts.model_shape)

    @property
    def lora_file_bytes(self) -> int:
        return lora_file_bytes(self.plan, self.facts.model_shape)

    @property
    def lora_exact(self) -> bool:
        """Whether the LoRA counts describe this network exactly (else an estimate)."""
        return lora_is_exact(self.plan)

    def memory_json(self) -> dict[str, Any]:
        """The peak GPU memory estimate (families.memory), by phase and part, in GiB."""
        from kohya_plan.checks.memory import card_gib, plan_memory
        from kohya_plan.families.memory import CONTEXT_GIB

        found = plan_memory(self.plan, self.facts)
        return {
            "estimate": True,
            "verified_on_gpu": False,
            "peak_gib": round(found.peak_gib, 2),
            "peak_phase": found.peak_phase,
            "cuda_context_gib": CONTEXT_GIB,
            "card_gib": card_gib(self.facts),
            "phases": {
                phase: {part: round(gib, 3) for part, gib in parts.items()}
                for phase, parts in found.phases.items()
            },
        }

    def raise_if_blocked(self) -> None:
        """Stop `make`/`launch` with every blocking error."""
        errors = blocking(self.findings)
        if errors:
            raise PlanError(errors)

    def _process_steps(self) -> dict[str, Any]:
        """The step numbers for P processes (check --json `steps`)."""
        steps = self.facts.steps
        assert steps is not None
        single = None
        if steps.one_process_epochs is not None:
            single = {
                "epochs": steps.one_process_epochs,
                "total_optimization_steps": steps.one_process_steps,
            }
        return {
            "num_processes": steps.num_processes,
            "batch_size_per_process": steps.batch_size,
            "gradient_accumulation_steps": steps.gradient_accumulation_steps,
            "effective_batch": steps.effective_batch,
            "dataset_batches": steps.dataset_batches,
            "samples_per_epoch": steps.samples_per_epoch,
            "batches_trained": steps.batches_trained,
            "epochs_given": steps.epochs_given,
            "one_process": single,
            "warmup": warmup_json(self.plan, steps.total_optimization_steps),
        }

    def to_json(self) -> dict[str, Any]:
        """The `check --json` document."""
        steps = self.facts.steps
        return {
            "ok": self.ok,
            "plan": str(self.plan_path),
            "errors": [f.to_json() for f in self.findings if f.severity == "error"],
            "advice": [f.to_json() for f in self.findings if f.severity == "advice"],
            "steps": None
            if steps is None
            else {
                "batches_per_epoch": steps.batches_per_epoch,
                "steps_per_epoch": steps.steps_per_epoch,
                "epochs": steps.epochs,
                "total_optimization_steps": steps.total_optimization_steps,
                "tutorial_formula": steps.tutorial_formula,
                "train_samples": steps.train_samples,
                "reg_samples": steps.reg_samples,
                "buckets": [{"width": w, "height": h, "count": n} for w, h, n in steps.buckets],
                **self._process_steps(),
            },
            "launch": {
                "num_processes": self.plan.launch.num_processes,
                "num_machines": self.plan.launch.num_machines,
                "processes_per_machine": self.plan.launch.processes_per_machine,
                "deepspeed": None
                if self.plan.launch.deepspeed is None
                else self.plan.launch.deepspeed.model_dump(mode="json"),
            },
            "dataset": {
                "subsets": [
                    {
                        "dir": str(f.subset.image_dir),
                        "repeats": f.subset.repeats,
                        "images": f.images,
                        "captions": f.captions,
                        "is_reg": f.subset.is_reg,
                        "sizes": sorted({f"{w}x{h}" for w, h in f.sizes}),
                    }
                    for f in self.facts.folders
                ]
            },
            "lora": {
                "parameters": self.lora_parameters,
                "file_bytes": self.lora_file_bytes,
                "precision": self.plan.output.save_precision,
                "exact": self.lora_exact,
            },
            "memory": self.memory_json(),
            "family": self.plan.model.family,
            "script": self.plan.script_name,
            "model": {
                "kind": self.facts.model_kind,
                "ref": self.facts.model_ref,
                "detected": self.facts.model_family_detected,
                "shape": self.facts.model_shape,
                "files": {
                    f.key: {"ref": f.ref, "kind": f.kind, "detected": f.detected}
                    for f in self.facts.model_files
                },
            },
            "hardware": self.facts.hardware.to_json() if self.facts.hardware else None,
            "deep": None if self.facts.deep is None else asdict(self.facts.deep),
            "sd_scripts": {
                "path": str(self.facts.sd_scripts) if self.facts.sd_scripts else None,
                "found": self.facts.sd_scripts_found,
                "pinned_commit": sd_scripts_commit(),
            },
        }


def warmup_json(plan: Plan, total_optimization_steps: int) -> dict[str, Any] | None:
    """What the plan's warm-up does with its processes (None without a warm-up)."""
    from kohya_plan.steps.count import warmup_for_processes

    value = plan.optimizer.warmup_steps
    if not value:
        return None
    warmup = warmup_for_processes(
        value,
        num_processes=plan.launch.num_processes,
        total_optimization_steps=total_optimization_steps,
    )
    return {
        "given": warmup.given,
        "scheduler_steps": warmup.scheduler_steps,
        "optimizer_steps": warmup.optimizer_steps,
        "peak_at_step": warmup.peak_at_step,
        "shortened": warmup.shortened,
        "corrected": warmup.corrected,
    }


def failed_report_json(exc: PlanError) -> dict[str, Any]:
    """`check --json` when the plan itself does not validate."""
    return {
        "ok": False,
        "errors": [f.to_json() for f in exc.findings],
        "advice": [],
        "steps": None,
        "dataset": {"subsets": []},
    }

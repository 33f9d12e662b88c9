"""`kohya-plan doctor [PLAN]`: what is wrong with the training environment, each with its fix.

`gather` is the one I/O function: it runs the probe script ONCE in the trainer's interpreter
(scripts/probe.py prints JSON) and reads the rest from kohya-plan's side (the checkout's
commit and requirements, nvidia-smi, the Hugging Face token's presence, tokenizer folders,
free disk). `evaluate` turns those facts into diagnoses and is pure, so every rule is tested
with made-up probe output.
"""

from __future__ import annotations

from kohya_plan.setup.doctor.facts import (
    Diagnosis,
    DoctorFacts,
    PlanNeeds,
    Status,
    optimizer_packages,
    plan_needs,
)
from kohya_plan.setup.doctor.gather import Target, gather, locate, report_json, run_probe
from kohya_plan.setup.doctor.rules import evaluate, worst

__all__ = [
    "Diagnosis",
    "DoctorFacts",
    "PlanNeeds",
    "Status",
    "Target",
    "evaluate",
    "gather",
    "locate",
    "optimizer_packages",
    "plan_needs",
    "report_json",
    "run_probe",
    "worst",
]

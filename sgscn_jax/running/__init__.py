"""Running a registered method over a data set: one run core for images and volumes (resume,
failures, summaries), the image and volume drivers, distributed runs, comparisons and
rescoring.

    from sgscn_jax import get_method
    from sgscn_jax.running import RunOptions, run_dataset
    result = run_dataset(cases, load, config, RunOptions(out_dir="runs/x"), get_method("otsu"))

The modules, each one idea (imports point down this list):

    options      RunOptions: every setting of an image run but the method
    runner       execute: the run core (run.json, resume, progress, failures, summaries)
    scoring      one case's object, overlay prediction, collapse and protocol scores
    seeds        seed keys; E seeds' label maps fused into one
    case_files   one image case's files (labels, objects, members, overlays, row); resume
                 upgrades from saved label maps
    inputs       what the method sees: hair removal, the working image, the memory refusal
    fitting      a data-set method's fitted state in the run folder
    levels       a hierarchy of label maps per case (CUTS) and the level oracles
    montage      montage.png, read back from the run folder
    images       the image driver and `run_dataset`
    volumes      the volume driver and `run_volumes`
    comparison   the paper's tables: every method and seed, one protocol
    rescore      scoring saved label maps again
    distributed, folder, results   teams of processes, the run folder, rows and CSVs

(`rescore.rescore` is not re-exported: the name would hide its module.)
"""

from sgscn_jax.running.comparison import TablePlan, plan, run_all, write_outputs
from sgscn_jax.running.images import ImageDriver, run_dataset
from sgscn_jax.running.options import RunOptions
from sgscn_jax.running.runner import RunResult, case_key, execute
from sgscn_jax.running.scoring import CaseScore, FoundObject, find_object, score_case
from sgscn_jax.running.seeds import seed_key
from sgscn_jax.running.volumes import VolumeOptions, run_volumes

__all__ = [
    "CaseScore", "FoundObject", "ImageDriver", "RunOptions", "RunResult", "TablePlan",
    "VolumeOptions", "case_key", "execute", "find_object", "plan", "run_all",
    "run_dataset", "run_volumes", "score_case", "seed_key", "write_outputs",
]

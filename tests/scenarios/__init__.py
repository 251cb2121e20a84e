"""Whole-CLI and multi-module scenarios. README's user stories, one end-to-end test each:

- build imagenette2-160 (what a build writes): test_build_e2e.py, the `built` tests
- --dry-run, several sizes, sha256sum -c (quick start): test_build_e2e.py::test_dry_run_writes_nothing_and_json_plan,
  ::test_checksums_verify_with_coreutils
- --manifest imagewoof2: test_build_e2e.py::test_imagewoof2_by_name_plans_its_whole_published_list
- your ImageNet copy, any layout, same bytes: test_build_e2e.py::test_same_bytes_whatever_jobs_backend_or_layout,
  test_archived_layouts.py::test_same_archives_as_from_extracted_folders
- missing or broken images, --skip-broken: test_faults.py
- verify: test_verify.py::test_built_archives_pass_every_level_against_the_source; the output folders:
  test_verify_shards.py
- compare: test_compare.py
- using the archives, every README line as written (torchvision, fastai, Hugging Face, WebDataset, a DataLoader
  with 2 workers): test_readme.py; extract, and the loaders: test_loaders.py; extract's refusals: test_extract_attacks.py
- shards for a DataLoader (8 a split, workers, seeded order, Hugging Face batches): test_shards.py
- a dataset that describes itself (the card, load_dataset(folder), Croissant, the contact sheet, the leakage
  table, new-manifest --split imagenet): test_dataset_card.py
- from nothing to a training batch: test_readme.py (as written), test_loaders.py::test_from_nothing_to_a_training_batch
- preview and classes: test_loaders.py::test_preview_*, test_newdataset.py::test_classes_command
- your own subset (new-manifest, then build): test_newdataset.py::test_manifest_from_new_manifest_builds_with_noisy_csv
- the Python API: test_loaders.py::test_python_api_builds_verifies_and_raises
- byte-identical to the published archives: test_fidelity.py
- Ctrl-C (or a dead machine), then the same command again: test_interrupt.py, test_loaders.py::test_rerun_*
- a Dask cluster: test_dask.py
"""

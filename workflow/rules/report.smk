# Every run's metrics -> results/tables.csv (mean +- std over seeds, paper numbers) and figures; the
# single-label runs' predictions -> confusion matrices and per-class accuracy per dataset.


rule aggregate:
    """Collect the metrics of every (experiment, seed) into one table and the figures."""
    input:
        metrics=plan.run_files("metrics.json"),
        info=plan.run_files("train.json"),
        # the confusion figures: the scored clips' predictions against the manifests' labels
        predictions=plan.run_files("predictions.csv"),
        manifests=plan.single_label_manifests(),
        # the sed figures: frame scores and decoded events of the scored clips
        scores=plan.run_files("predictions.h5"),
    output:
        table=report("results/tables.csv", caption="../report/tables.rst", category="Results"),
        per_seed="results/per_seed.csv",
        stages="results/stage_times.csv",
        bars=report("results/figures/primary_metric.png", caption="../report/primary_metric.rst", category="Figures"),
        curves=report("results/figures/training_curves.png", caption="../report/training_curves.rst", category="Figures"),
        # single-label classifiers: one of each per dataset
        confusion=report(plan.class_figures("confusion"), caption="../report/confusion.rst", category="Figures",
                         subcategory="Confusion matrices"),
        per_class=report(plan.class_figures("per_class_accuracy"), caption="../report/per_class_accuracy.rst",
                         category="Figures", subcategory="Per-class accuracy"),
        sed=report(plan.sed_figures(), caption="../report/sed.rst", category="Figures",
                   subcategory="Sound event detection"),
        confusion_table="results/confusion.csv",
        per_class_table="results/per_class_accuracy.csv",
    params:
        runs=plan.runs_arg,
    conda:
        CONDA_ENV
    log:
        "logs/aggregate.log",
    benchmark:
        "benchmarks/aggregate.tsv"
    localrule: True
    shell:
        "python -m soundbench aggregate --runs {params.runs} --table {output.table:q} "
        "--figures \"$(dirname {output.bars:q})\" --benchmarks benchmarks > {log:q} 2>&1"

# Stage 3: FMM map matching (fastmm), fanned out over N chunks with Snakemake's scatter/gather.
#
#   build_ubodt      segments -> results/<city>/ubodt/ (fastmm's UBODT cache + ubodt.json), built once per
#                    city and delta; every map_match_chunk job loads it (none builds it: require_ubodt)
#   map_match_chunk  chunk i of N of trips.parquet -> results/<city>/map_matching/<i>-of-<N>/*.parquet
#   map_match        gather: the chunks in order -> matched.parquet + QC over the whole city
#
# N defaults to 2 here; a profile or the command line sets it (`--set-scatter map_match=16`).
# The gathered tables equal the unchunked stage's for every N (tests/core/test_map_matching_fanout.py).
# Both stream: a chunk job matches its trips in batches (chunks.BATCH_POINTS fixes) appended to its
# files, the gather copies the chunks' row groups; memory does not grow with the city
# (tests/core/test_map_matching_streaming.py, benchmarks/benchmark_streaming.py).


scattergather:
    map_match=2,


rule build_ubodt:
    input:
        segments="results/{city}/roads/segments.parquet",
    output:
        ubodt=directory("results/{city}/ubodt"),
    log:
        "logs/{city}/build_ubodt.log",
    benchmark:
        "benchmarks/{city}/build_ubodt.tsv"
    conda:
        "../../envs/core.yaml"
    params:
        # only the delta (a number: `auto` is resolved in common.smk) shapes the table: other
        # matching parameters and the ingest do not rebuild it
        ubodt_delta=lambda wc: config["cities"][wc.city]["map_matching"]["ubodt_delta"],
    script:
        "../scripts/build_ubodt.py"


rule map_match_chunk:
    input:
        trips="results/{city}/trips.parquet",
        segments="results/{city}/roads/segments.parquet",
        ubodt="results/{city}/ubodt",
    output:
        matched=temp("results/{city}/map_matching/{scatteritem}/matched.parquet"),
        stats=temp("results/{city}/map_matching/{scatteritem}/stats.parquet"),
        rejections=temp("results/{city}/map_matching/{scatteritem}/rejections.parquet"),
    log:
        "logs/{city}/map_match_chunk/{scatteritem}.log",
    benchmark:
        "benchmarks/{city}/map_match_chunk/{scatteritem}.tsv"
    conda:
        "../../envs/core.yaml"
    params:
        map_matching=lambda wc: config["cities"][wc.city]["map_matching"],
        crs=lambda wc: config["cities"][wc.city]["crs"],
    script:
        "../scripts/map_match_chunk.py"


rule map_match:
    input:
        trips="results/{city}/trips.parquet",
        matched=gather.map_match(
            "results/{{city}}/map_matching/{scatteritem}/matched.parquet"
        ),
        stats=gather.map_match(
            "results/{{city}}/map_matching/{scatteritem}/stats.parquet"
        ),
        rejections=gather.map_match(
            "results/{{city}}/map_matching/{scatteritem}/rejections.parquet"
        ),
    output:
        matched="results/{city}/matched.parquet",
        stats="results/{city}/qc/map_matching_stats.parquet",
        rejections="results/{city}/qc/map_matching_rejections.parquet",
        qc="results/{city}/qc/map_matching.csv",
    log:
        "logs/{city}/map_match.log",
    benchmark:
        "benchmarks/{city}/map_match.tsv"
    conda:
        "../../envs/core.yaml"
    params:
        # logged beside the 90th percentile interval measured on the trips (ubodt_delta: auto)
        sampling_interval_s=lambda wc: config["cities"][wc.city].get(
            "sampling_interval_s"
        ),
        ubodt_delta=lambda wc: config["cities"][wc.city]["map_matching"]["ubodt_delta"],
    script:
        "../scripts/map_match.py"

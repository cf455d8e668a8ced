"""Posthorn benchmark runner library (bench/run is the entry point).

  core     - run context, figures (warm-up + N runs, median), results JSON, tables
  procstat - CPU time and memory of process trees from /proc, machine CPU use
  floors   - the machine's own limits: openssl speed, pgbench, smtp-source -> smtp-sink
  peers    - a private Postfix relaying to smtp-sink, with and without OpenDKIM
  stack    - a private Posthorn stack (PostgreSQL, Redis, dnsmasq, api, worker) for scenarios
  wrk      - wrk with bench/wrk/*.lua, results as JSON
  chart    - throughput-over-time PNGs with gnuplot
"""

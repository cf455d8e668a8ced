"""Posthorn test harness: real servers on loopback for e2e tests and benchmarks.

Modules:
  ports   - free loopback ports and addresses
  procs   - start/stop a child process with captured logs and readiness checks
  pg      - throwaway PostgreSQL cluster (initdb, run as the postgres user when root)
  redis   - throwaway redis-server
  dns     - dnsmasq serving test records
  mta     - smtp-sink, smtp-source, a private Postfix instance, OpenDKIM
  smtppeer- scripted SMTP peers on aiosmtpd
  posthorn- the Posthorn binaries with settings for one test
"""

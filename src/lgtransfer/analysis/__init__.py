"""The numbers, torch-free: evaluation rows to tables (`results`), curve metrics, statistics, the
registered test and verdicts, the evidence folder, and the reports.
"""

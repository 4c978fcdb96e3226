"""Sweep configs: each runs one experiment of many train.py runs through its tool (tools/compare.py,
tools/induction.py, tools/knowledge.py or tools/prime.py), not through train.py."""

"""Performance benchmarks for the iMBrace Conversations API (issue 7).

Run with ``python -m bench.run``; not part of the test suite. See README's
"Performance" section and bench/results/.
"""

"""The studies' findings next to ours: which our runs confirm, which they contradict.

core.py holds what every workload's findings share (a claim, what we saw, a verdict per
backend); adder.py judges the first study's claims, sentiment.py the second lab's.
"""

from common import tasks
from compare.findings import adder, sentiment

# Each workload's checks by sweep name: compare.sweeps refuses a sweep its workload has none for.
CHECKS = {tasks.ADDER.name: adder.CHECKS, tasks.SENTIMENT.name: sentiment.CHECKS}

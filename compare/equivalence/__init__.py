"""Do the two backends compute the same thing? (`python -m compare.equivalence`, __main__.py.)

core.py holds the bounds, the measurements behind them and the result of one variant; adder.py
and sentiment.py run both backends on the same weights and batches of their workload (each with
`check`, OPTIONS, LAYERS and OVER; `print_summary` where it has one); CHECKS maps a task to its.
"""

from common import tasks
from compare.equivalence import adder, sentiment

CHECKS = {tasks.ADDER.name: adder, tasks.SENTIMENT.name: sentiment}

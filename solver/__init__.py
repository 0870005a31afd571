"""fit's model of a llama.cpp launch: inventory, hardware, memory, cost and placement."""

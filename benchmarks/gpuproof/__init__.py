"""The stages of benchmarks/gpu_proof.py: environment, correctness, throughput, time to accuracy, input end to end."""

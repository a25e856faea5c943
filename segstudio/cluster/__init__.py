"""Training on a cluster: job.py writes and checks a job folder (Slurm + torchrun), scripts.py holds
the job folder's scripts and README as templates."""

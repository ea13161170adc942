"""Fusion: from each vehicle's inferred scenes to kinematics, incidents and alerts (``fusion.stage``).

The domain logic of the pipeline's fusion stage, free of Kafka, Faust and PostgreSQL; the Faust agent
that runs it is ``streams.fusion.agent``, and the sink that stores its alerts ``streams.sinks``.
"""

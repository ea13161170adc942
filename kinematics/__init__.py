"""Kinematics after ST-VLM (arXiv 2503.19355): distances, speeds and directions of the ego vehicle and of
the objects the scene-graph model sees, from GPS and the calibrated dashcam's ground plane; and the one
definition of hard braking (``braking``). Fusion's kinematic events (``fusion.events``) are built on it."""

"""Fleet coordinator core: tasks in, assignments out, nothing lost (no rclpy here)."""

"""What the ground truth reads of a simulated motion, as a Protocol: ``motion`` builds the events and
``truth`` completes them from the motion's trajectories without the two modules importing each other."""

from __future__ import annotations

from typing import Protocol

from .jets import FloatArray
from .mount import Mount


class MotionView(Protocol):
    def truth_angles_deg(self, side: str, t_s: FloatArray) -> FloatArray: ...

    def hip_kinematics(self, side: str, t_s: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]: ...

    def imu(
        self, side: str, segment: str, mount: Mount, t_s: FloatArray, wobble: bool = True
    ) -> tuple[FloatArray, FloatArray]: ...

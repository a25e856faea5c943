"""A banner at the top of an area showing that area's latest message, with details on demand."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QToolButton

from segstudio.ui.state import AppState, Message

INFO_MS = 8000  # info messages go away by themselves; warnings and errors stay until closed


class MessageBar(QFrame):
    """Shows the AppState messages posted by one area."""

    def __init__(self, area: str, state: AppState, parent=None):
        super().__init__(parent)
        self.area = area
        self.setObjectName(f"message_bar_{area}")
        self.label = QLabel("", objectName=f"label_message_{area}", wordWrap=True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # the text wraps to the width it is given, never widening the window
        self.label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.label.setMinimumWidth(50)
        self.button_action = QPushButton("", objectName=f"button_message_action_{area}")
        self.button_close = QToolButton(objectName=f"button_message_close_{area}", text="✕", autoRaise=True)
        self.button_close.setToolTip("Close")
        self.button_close.clicked.connect(self.hide)
        h = QHBoxLayout(self)
        h.setContentsMargins(8, 4, 4, 4)
        h.addWidget(self.label, 1)
        h.addWidget(self.button_action)
        h.addWidget(self.button_close)
        self._timer = QTimer(self, singleShot=True, interval=INFO_MS)
        self._timer.timeout.connect(self.hide)
        self._action = None
        self.button_action.clicked.connect(lambda: self._action and self._action())
        self.message: Message | None = None
        self.hide()
        state.watch("message", self._on_message)

    def clear(self) -> None:
        """Hide the message shown (it stays in the log)."""
        self._timer.stop()
        self.message = None
        self.hide()

    def _on_message(self, message: Message) -> None:
        if message.area != self.area:
            return
        self.message = message
        first, _, details = message.text.partition("\n")
        self.label.setText(first)
        self.setToolTip(details[:4000])
        self.setProperty("level", message.level)
        self.style().unpolish(self)
        self.style().polish(self)
        self._action = message.action[1] if message.action else None
        self.button_action.setText(message.action[0] if message.action else "")
        self.button_action.setVisible(message.action is not None)
        self.show()
        if message.level == "info" and message.action is None:
            self._timer.start()
        else:
            self._timer.stop()

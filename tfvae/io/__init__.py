"""File I/O: the one place that writes files and directories atomically, and reads them back."""

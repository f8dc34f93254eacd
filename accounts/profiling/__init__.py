"""Pure risk-profiling code: scoring and psychometrics. No Django import, ever."""

"""The AI analysis gateway (issue 18): one service that holds the LLM endpoint's key and speaks
to any OpenAI-compatible Chat Completions endpoint. This first part: its configuration, the
upstream client (retries, budgets, concurrency, streaming) and address pseudonymisation."""

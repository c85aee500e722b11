"""The prepaid wallet: ledger, purchases, refunds, disputes and the audit."""

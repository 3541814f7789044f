"""The explanation report of a referral: one template, HTML and PDF."""

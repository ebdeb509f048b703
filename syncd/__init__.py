"""syncd: keeps an Odoo ERP and a PostgreSQL database in step, in both directions."""

__version__ = "0.1.0"

"""The CRM loop: the CRM definition, what revops pushes, the HubSpot and Salesforce connectors,
and how the CRMs' changes read as sales events (docs/crm.md)."""

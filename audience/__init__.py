"""Who a contact is and which audiences it belongs to: the facts every condition
evaluates, the one condition language, lists (segments), demand states and consent."""

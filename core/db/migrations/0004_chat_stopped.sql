-- A chat answer the person stopped is kept as it was, marked stopped; the mark is shown on
-- the page but never sent back to the model as part of the answer.
ALTER TABLE conversation_messages ADD COLUMN stopped BOOLEAN DEFAULT false;

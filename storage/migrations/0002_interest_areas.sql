-- The interest-area catalog users pick from during onboarding and agents are tagged with.
INSERT INTO interest_areas (slug, name, description) VALUES
    ('law', 'Law', 'Contracts, litigation, compliance and legal research'),
    ('finance', 'Finance', 'Corporate finance, investing, accounting and financial analysis'),
    ('personal-finance', 'Personal finance', 'Budgeting, saving, debt, retirement and taxes for individuals'),
    ('marketing', 'Marketing', 'Brand, content, campaigns, SEO and market research'),
    ('sales', 'Sales', 'Prospecting, negotiation, pipelines and customer relationships'),
    ('software-engineering', 'Software engineering', 'Programming, architecture, testing and operations'),
    ('data-science', 'Data science', 'Statistics, machine learning, analytics and visualization'),
    ('healthcare', 'Healthcare', 'Clinical practice, public health and medical research'),
    ('education', 'Education', 'Teaching, curriculum design and learning'),
    ('human-resources', 'Human resources', 'Hiring, people management, culture and labor relations'),
    ('product-management', 'Product management', 'Discovery, roadmaps, prioritization and delivery'),
    ('design', 'Design', 'UX, UI, visual and product design'),
    ('writing', 'Writing', 'Copywriting, editing, documentation and storytelling'),
    ('research', 'Research', 'Literature review, methodology and academic writing'),
    ('entrepreneurship', 'Entrepreneurship', 'Starting, funding and growing a business'),
    ('operations', 'Operations', 'Processes, logistics, supply chain and project management');

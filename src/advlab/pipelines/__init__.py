"""advlab.pipelines"""
